//! Whom `/send` and `/kick` mean: their `uid` and `device` comma lists,
//! checked, and each device name resolved to the users who have a device of
//! that name ([`super::devices`]). A device whose user is named too is left
//! out: the user's inbox (or kick) already covers it, and counting it twice
//! would overstate `result`.

use std::collections::HashSet;
use std::sync::Arc;

use super::devices::Devices;
use super::envelope::Failure;
use super::params::Params;
use crate::identity::claims::check_name;

/// The users and (user, device) pairs a request names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Targets {
    pub users: Vec<String>,
    pub devices: Vec<(Arc<str>, String)>,
}

impl Targets {
    /// Reads `uid` and `device`; at most `max` names in all.
    pub fn read(params: &Params, devices: &Devices, max: usize) -> Result<Targets, Failure> {
        let uids = params.list("uid");
        let names = params.list("device");
        if uids.len() + names.len() > max {
            return Err(Failure::bad_request(format!(
                "too many targets: at most {max} uids plus devices per request (identity.maxSendTargets), got {}",
                uids.len() + names.len()
            )));
        }
        for (what, list) in [("uid", &uids), ("device", &names)] {
            for name in list {
                check_name(name)
                    .map_err(|why| Failure::bad_request(format!("{what} {name:?} {why}")))?;
            }
        }
        let named: HashSet<&str> = uids.iter().copied().collect();
        let mut targets = Targets {
            users: uids.iter().map(|u| u.to_string()).collect(),
            devices: Vec::new(),
        };
        for name in names {
            for user in devices.users(name) {
                if !named.contains(&*user) {
                    targets.devices.push((user, name.to_string()));
                }
            }
        }
        Ok(targets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn devices_resolve_to_their_users_once() {
        let devices = Devices::new(Duration::from_secs(60));
        let _a = devices.open("ax001", "alice");
        let _b = devices.open("ax001", "bob");
        let params = Params::from_query("uid=alice&device=ax001,ghost").expect("query");
        let t = Targets::read(&params, &devices, 10).expect("targets");
        assert_eq!(t.users, ["alice"]);
        assert_eq!(t.devices, [(Arc::from("bob"), "ax001".to_string())]);

        let e = Targets::read(&params, &devices, 2).expect_err("over the limit");
        assert!(e.msg.contains("identity.maxSendTargets"), "{}", e.msg);
        let bad = Params::from_query("uid=a%01b").expect("query");
        assert!(Targets::read(&bad, &devices, 10).is_err());
    }
}
