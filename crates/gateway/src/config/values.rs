//! Reading one setting from the environment or the TOML file, and parsing its value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ConfigError;

/// Prefix of every environment variable.
const ENV_PREFIX: &str = "ROOMCAST_";

/// The settings still to be read: environment first, then the file.
pub(super) struct Settings<'a> {
    file: Option<(String, toml::Table)>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

/// A setting's raw value and where it came from.
enum Raw {
    Env(String),
    File(toml::Value),
}

/// A type a setting can have.
pub(super) trait SettingValue: Sized {
    /// Parses an environment variable's text.
    fn from_text(text: &str) -> Result<Self, String>;
    /// Converts a TOML value; strings go through [`SettingValue::from_text`].
    fn from_toml(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(s) => Self::from_text(&s),
            other => Self::from_text(&other.to_string()),
        }
    }
}

impl<'a> Settings<'a> {
    /// Reads `file` (if given) as a TOML table.
    pub(super) fn open(file: Option<&Path>, env: &'a dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = match file {
            None => None,
            Some(path) => {
                let name = path.display().to_string();
                let fail = |message: String| ConfigError { setting: format!("--config {name}"), message };
                let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
                let table = text.parse::<toml::Table>().map_err(|e| fail(e.message().to_owned()))?;
                Some((name, table))
            }
        };
        Ok(Self { file, env })
    }

    /// An error about `key`, named the way the user set it.
    pub(super) fn error(&self, key: &str, message: &str) -> ConfigError {
        let env_name = env_name(key);
        let setting = match &self.file {
            Some((file, table)) if (self.env)(&env_name).is_none() && table.contains_key(key) => {
                format!("{key} in {file}")
            }
            _ => env_name,
        };
        ConfigError { setting, message: message.to_owned() }
    }

    fn take(&mut self, key: &str) -> Option<Raw> {
        let from_file = self.file.as_mut().and_then(|(_, t)| t.remove(key));
        match (self.env)(&env_name(key)) {
            Some(text) => Some(Raw::Env(text)),
            None => from_file.map(Raw::File),
        }
    }

    /// Reads `key`, or `None` when neither the environment nor the file sets it.
    pub(super) fn get<T: SettingValue>(&mut self, key: &str) -> Result<Option<T>, ConfigError> {
        let (value, setting) = match self.take(key) {
            None => return Ok(None),
            Some(Raw::Env(text)) => (T::from_text(&text), env_name(key)),
            Some(Raw::File(value)) => {
                let file = self.file.as_ref().map(|(f, _)| f.as_str()).unwrap_or_default();
                (T::from_toml(value), format!("{key} in {file}"))
            }
        };
        value.map(Some).map_err(|message| ConfigError { setting, message })
    }

    /// Overwrites `target` with `key` when it is set.
    pub(super) fn set<T: SettingValue>(&mut self, target: &mut T, key: &str) -> Result<(), ConfigError> {
        if let Some(value) = self.get(key)? {
            *target = value;
        }
        Ok(())
    }

    /// Overwrites `target` with the byte size `key` when it is set.
    pub(super) fn set_size(&mut self, target: &mut usize, key: &str) -> Result<(), ConfigError> {
        if let Some(ByteSize(value)) = self.get(key)? {
            *target = value;
        }
        Ok(())
    }

    /// Fails on any key left in the file: a typo must not be ignored.
    pub(super) fn finish(&self) -> Result<(), ConfigError> {
        if let Some((file, table)) = &self.file
            && let Some(key) = table.keys().next()
        {
            return Err(ConfigError { setting: format!("{key} in {file}"), message: "unknown setting".to_owned() });
        }
        Ok(())
    }
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_ascii_uppercase())
}

impl SettingValue for String {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.to_owned())
    }
    fn from_toml(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(s) => Ok(s),
            other => Err(format!("expected a string, got {other}")),
        }
    }
}

impl SettingValue for PathBuf {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
}

impl SettingValue for SocketAddr {
    fn from_text(text: &str) -> Result<Self, String> {
        text.parse().map_err(|_| format!("expected address:port such as 127.0.0.1:8080, got {text:?}"))
    }
}

impl SettingValue for Duration {
    fn from_text(text: &str) -> Result<Self, String> {
        parse_duration(text)
    }
}

macro_rules! number_setting {
    ($($t:ty),*) => {$(
        impl SettingValue for $t {
            fn from_text(text: &str) -> Result<Self, String> {
                text.trim().parse().map_err(|_| format!("expected a number, got {text:?}"))
            }
        }
    )*};
}
number_setting!(u32, u64, usize, f64);

impl SettingValue for bool {
    fn from_text(text: &str) -> Result<Self, String> {
        match text.trim() {
            "true" | "1" | "on" | "yes" => Ok(true),
            "false" | "0" | "off" | "no" => Ok(false),
            other => Err(format!("expected true or false, got {other:?}")),
        }
    }
}

impl SettingValue for Vec<String> {
    fn from_text(text: &str) -> Result<Self, String> {
        Ok(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
    }
    fn from_toml(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Err(format!("expected a list of strings, found {other}")),
                })
                .collect(),
            toml::Value::String(s) => Self::from_text(&s),
            other => Err(format!("expected a list of strings, got {other}")),
        }
    }
}

/// A size in bytes: `65536`, `64KiB`, `1MiB`.
struct ByteSize(usize);

impl SettingValue for ByteSize {
    fn from_text(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let scale = match unit.trim() {
            "" | "B" => 1,
            "KiB" | "K" | "KB" => 1024,
            "MiB" | "M" | "MB" => 1024 * 1024,
            _ => {
                return Err(format!("expected a size such as 65536, 64KiB or 1MiB, got {text:?}"));
            }
        };
        digits
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .map(ByteSize)
            .ok_or_else(|| format!("expected a size such as 65536, 64KiB or 1MiB, got {text:?}"))
    }
}

/// Parses `500ms`, `25s`, `10m`, `1h` or `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let fail = || format!("expected a duration such as 500ms, 25s, 10m or 1h, got {text:?}");
    let n: u64 = digits.parse().map_err(|_| fail())?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs).ok_or_else(fail);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => Err(fail()),
    }
}
