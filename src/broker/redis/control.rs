//! The per-node control channel `<p>ctl:<node>`: JSON commands to one node
//! of the cluster, which only that node can carry out (ending one of its
//! connections, with the farewell that connection's profile spells).
//!
//! Every node listens to its own channel on the listener's pub/sub
//! connection (subscribed again after every reconnect, see
//! [`super::listener`]). A command published while the node is not
//! listening is lost, as pub/sub messages are: the sender learns how many
//! nodes heard it and a kick answers 503 when none did. What arrives is
//! checked like publisher input: anything that is not a well-formed
//! command is dropped and counted.
//!
//! `{"cmd":"end","ids":["<conn>",…],"why":"kicked","reason":"…"}` or
//! `{"cmd":"end","ids":[…],"why":"taken_over","by":"<addr>"}`. Other
//! parts of the cluster work may add commands.

use serde::{Deserialize, Serialize};

use crate::broker::directory::{Command, Ending};

/// Most connections one command may name (a kick of many users is split).
pub(super) const MAX_IDS: usize = 1000;

#[derive(Debug, Serialize, Deserialize)]
struct Wire {
    cmd: String,
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    why: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    by: Option<String>,
}

/// The JSON of an `end` command.
pub(super) fn encode_end(ids: &[String], why: &Ending) -> String {
    let (why, reason, by) = match why {
        Ending::Kicked { reason } => ("kicked", reason.clone(), None),
        Ending::TakenOver { by } => ("taken_over", None, by.clone()),
    };
    let wire = Wire {
        cmd: "end".into(),
        ids: ids.to_vec(),
        why: why.into(),
        reason,
        by,
    };
    serde_json::to_string(&wire).unwrap_or_default()
}

/// A command read from the channel, or `None` when it is not one.
pub(super) fn parse(payload: &[u8]) -> Option<Command> {
    let wire: Wire = serde_json::from_slice(payload).ok()?;
    if wire.cmd != "end" || wire.ids.is_empty() || wire.ids.len() > MAX_IDS {
        return None;
    }
    let why = match wire.why.as_str() {
        "kicked" => Ending::Kicked {
            reason: wire.reason,
        },
        "taken_over" => Ending::TakenOver { by: wire.by },
        _ => return None,
    };
    Some(Command::End { ids: wire.ids, why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_commands_round_trip_and_junk_is_refused() {
        let ids = vec!["a".to_string(), "b".to_string()];
        for why in [
            Ending::Kicked {
                reason: Some("bye".into()),
            },
            Ending::TakenOver {
                by: Some("127.0.0.1:9".into()),
            },
        ] {
            let text = encode_end(&ids, &why);
            assert_eq!(
                parse(text.as_bytes()),
                Some(Command::End {
                    ids: ids.clone(),
                    why
                })
            );
        }
        for junk in [
            &b"nope"[..],
            br#"{"cmd":"end","ids":[],"why":"kicked"}"#,
            br#"{"cmd":"end","ids":["a"],"why":"other"}"#,
            br#"{"cmd":"reboot","ids":["a"],"why":"kicked"}"#,
        ] {
            assert_eq!(parse(junk), None);
        }
    }
}
