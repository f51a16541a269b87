//! [`History`]: a room's position and the events after a given one, as Redis returned them.

use prost::Message;
use redis::Value;
use roomcast_proto::envelope::Envelope;

use crate::Error;

/// A room's position and, when asked and still kept, the events after a given offset.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// The room's last offset (0 before its first event).
    pub offset: u64,
    /// The room's epoch.
    pub epoch: String,
    /// The events after the asked offset, in offset order, ending at `offset`; empty when none
    /// was asked, the epoch differs, or history is off. They may start later than asked when
    /// history was trimmed or expired: see [`History::continues_from`].
    pub events: Vec<Envelope>,
}

impl History {
    /// Whether `events` are exactly every event after `since` up to `offset`, in this epoch,
    /// with no gap: the condition for recovering from `since`.
    pub fn continues_from(&self, since: u64, epoch: &str) -> bool {
        if epoch != self.epoch || since > self.offset {
            return false;
        }
        let expected = self.offset - since;
        self.events.len() as u64 == expected
            && self.events.iter().zip(since + 1..).all(|(event, offset)| event.offset == offset)
    }

    /// Parses the HISTORY script's reply: `{offset, epoch, member, envelope...}`; `None` when
    /// the user checked is not a member.
    pub(crate) fn from_reply(reply: Vec<Value>) -> Result<Option<Self>, Error> {
        let bad = |what: &str| Error::Reply(format!("history: {what}"));
        if matches!(reply.get(2), Some(Value::Int(0))) {
            return Ok(None);
        }
        let mut items = reply.into_iter();
        let offset = match items.next() {
            Some(Value::Int(n)) => u64::try_from(n).map_err(|_| bad("negative offset"))?,
            _ => return Err(bad("no offset")),
        };
        let epoch = match items.next() {
            Some(Value::BulkString(b)) => String::from_utf8(b).map_err(|_| bad("epoch is not UTF-8"))?,
            _ => return Err(bad("no epoch")),
        };
        items.next();
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            let Value::BulkString(bytes) = item else { return Err(bad("entry is not a string")) };
            // An entry this crate wrote always decodes; anything else is not ours to deliver.
            events.push(Envelope::decode(bytes.as_slice()).map_err(|e| bad(&e.to_string()))?);
        }
        Ok(Some(Self { offset, epoch, events }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(offset: u64) -> Envelope {
        Envelope { offset, epoch: "E".into(), ..Envelope::default() }
    }

    #[test]
    fn continuity_needs_every_offset_after_since_in_the_same_epoch() {
        let h = History { offset: 5, epoch: "E".into(), events: vec![at(3), at(4), at(5)] };
        assert!(h.continues_from(2, "E"));
        assert!(!h.continues_from(1, "E"), "offset 2 was trimmed");
        assert!(!h.continues_from(2, "F"), "another epoch");
        assert!(!h.continues_from(6, "E"), "ahead of the room");
        let caught_up = History { offset: 5, epoch: "E".into(), events: vec![] };
        assert!(caught_up.continues_from(5, "E"));
        let gapped = History { offset: 5, epoch: "E".into(), events: vec![at(3), at(5)] };
        assert!(!gapped.continues_from(3, "E"));
    }
}
