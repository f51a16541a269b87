//! Message ids and epochs, made the same way by every publisher of a deployment (gateway
//! nodes and backends).

/// A message id for an event published without one: 128 random bits in hex.
pub fn new_message_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A fresh epoch for a room whose position is new (or was lost): 64 random bits in hex.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_epochs_are_fixed_width_hex_and_differ() {
        let (a, b) = (new_message_id(), new_message_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(new_epoch().chars().all(|c| c.is_ascii_hexdigit()) && new_epoch().len() == 16);
    }
}
