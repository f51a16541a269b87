//! [`EventTable`]: which Socket.IO client events are roomcast commands.
//!
//! Each entry of the `socketio_events` setting is `<event>=<command> <room template>`, where
//! the command is `subscribe`, `unsubscribe` or `emit` and the template names fields of the
//! event's first argument in braces: `subscribe:chat=subscribe dialog:{chatId}` makes
//! `socket.emit("subscribe:chat", {chatId: 42})` a subscribe to `dialog:42`. An `emit` entry
//! relays the event under its own name into that room. The `roomcast:*` events are always
//! there: `roomcast:subscribe {room, token?, since?}`, `roomcast:unsubscribe {room}`,
//! `roomcast:emit {room, event, data}` and `roomcast:refresh {token}`.

use serde_json::Value;

/// What a mapped event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Join the room.
    Subscribe,
    /// Leave the room.
    Unsubscribe,
    /// Relay the event into the room.
    Emit,
}

/// One `socketio_events` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// The Socket.IO event name.
    pub event: String,
    /// What it does.
    pub command: Command,
    /// The room, with `{field}` placeholders.
    template: String,
}

/// The configured mappings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventTable {
    mappings: Vec<Mapping>,
}

/// The defaults, which serve the Socket.IO seed app (`subscribe:chat {chatId}` ...) as written.
pub const DEFAULT_EVENTS: &[&str] = &[
    "subscribe:chat=subscribe dialog:{chatId}",
    "unsubscribe:chat=unsubscribe dialog:{chatId}",
    "typing:start=emit dialog:{chatId}",
    "typing:stop=emit dialog:{chatId}",
];

impl EventTable {
    /// Parses the entries; an error names the entry and what is wrong with it.
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let mut mappings = Vec::new();
        for entry in entries {
            let bad = |why: &str| format!("{entry:?}: {why} (expected <event>=<subscribe|unsubscribe|emit> <room>)");
            let (event, action) = entry.split_once('=').ok_or_else(|| bad("no ="))?;
            let (command, template) = action.trim().split_once(' ').ok_or_else(|| bad("no room"))?;
            let command = match command {
                "subscribe" => Command::Subscribe,
                "unsubscribe" => Command::Unsubscribe,
                "emit" => Command::Emit,
                _ => return Err(bad("unknown command")),
            };
            let (event, template) = (event.trim(), template.trim());
            if event.is_empty() || event.starts_with("roomcast:") {
                return Err(bad("the event name is empty or reserved"));
            }
            if template.matches('{').count() != template.matches('}').count() || template.contains(' ') {
                return Err(bad("the room template's braces do not match"));
            }
            mappings.push(Mapping { event: event.to_owned(), command, template: template.to_owned() });
        }
        Ok(Self { mappings })
    }

    /// The table of [`DEFAULT_EVENTS`].
    pub fn defaults() -> Self {
        let entries: Vec<String> = DEFAULT_EVENTS.iter().map(|s| (*s).to_owned()).collect();
        Self::parse(&entries).unwrap_or_default()
    }

    /// The mapping of `event`, if it has one.
    pub fn get(&self, event: &str) -> Option<&Mapping> {
        self.mappings.iter().find(|m| m.event == event)
    }
}

impl Mapping {
    /// The room for an event whose first argument is `arg`: each `{field}` replaced by the
    /// field's string or integer value; `None` when one is missing.
    pub fn room(&self, arg: Option<&Value>) -> Option<String> {
        let mut out = String::new();
        let mut rest = self.template.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..].find('}')? + open;
            let field = &rest[open + 1..close];
            match arg?.get(field)? {
                Value::String(s) => out.push_str(s),
                Value::Number(n) if n.is_i64() || n.is_u64() => out.push_str(&n.to_string()),
                _ => return None,
            }
            rest = &rest[close + 1..];
        }
        out.push_str(rest);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_defaults_map_the_seed_apps_events() {
        let table = EventTable::defaults();
        let subscribe = table.get("subscribe:chat").unwrap();
        assert_eq!(subscribe.command, Command::Subscribe);
        assert_eq!(subscribe.room(Some(&json!({"chatId": 42}))).as_deref(), Some("dialog:42"));
        assert_eq!(
            table.get("typing:stop").unwrap().room(Some(&json!({"chatId": "a7"}))).as_deref(),
            Some("dialog:a7")
        );
        assert_eq!(subscribe.room(Some(&json!({"chat": 1}))), None, "a missing field");
        assert_eq!(subscribe.room(Some(&json!({"chatId": 1.5}))), None, "not an id");
        assert_eq!(subscribe.room(None), None);
        assert!(table.get("message:new").is_none());
    }

    #[test]
    fn bad_entries_name_themselves() {
        for bad in ["join", "join=", "join=leave dialog:{x}", "join=subscribe", "roomcast:x=emit a", "j=emit dialog:{x"]
        {
            let err = EventTable::parse(&[bad.to_owned()]).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
    }
}
