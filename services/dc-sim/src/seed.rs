//! A fresh DC's contents (`seed.json`, data not code): the `sdc`
//! application, the core services each with one running instance and VM,
//! the `admin` and `external` networks, the `sdc_*` packages and one
//! headnode.

use crate::state::State;

const SEED: &str = include_str!("seed.json");

#[derive(Debug, thiserror::Error)]
#[error("the built-in seed (services/dc-sim/src/seed.json) is broken: {0}")]
pub struct SeedError(String);

pub fn seed() -> Result<State, SeedError> {
    serde_json::from_str(SEED).map_err(|e| SeedError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{find, str_of, uuid_of};

    #[test]
    fn seed_is_a_fresh_dc() {
        let s = seed().unwrap();
        let sdc = &s.applications[0];
        assert_eq!(str_of(sdc, "name"), Some("sdc"));
        assert_eq!(
            str_of(sdc, "owner_uuid"),
            Some(s.admin_uuid.to_string().as_str())
        );
        for key in ["datacenter_name", "dns_domain", "update_channel"] {
            assert!(sdc["metadata"].get(key).is_some(), "sdc metadata {key}");
        }
        for name in [
            "sapi", "vmapi", "napi", "papi", "cnapi", "imgapi", "adminui",
        ] {
            let svc = s
                .services
                .iter()
                .find(|o| str_of(o, "name") == Some(name))
                .unwrap_or_else(|| panic!("service {name}"));
            let insts: Vec<_> = s
                .instances
                .iter()
                .filter(|i| str_of(i, "service_uuid") == uuid_of(svc))
                .collect();
            assert_eq!(insts.len(), 1, "{name}");
            let vm = find(&s.vms, uuid_of(insts[0]).unwrap()).unwrap();
            assert_eq!(str_of(vm, "state"), Some("running"));
        }
        for name in ["admin", "external"] {
            let net = s
                .networks
                .iter()
                .find(|n| str_of(n, "name") == Some(name))
                .unwrap();
            assert!(str_of(net, "provision_start_ip").is_some());
        }
        assert!(
            s.packages
                .iter()
                .any(|p| str_of(p, "name") == Some("sdc_1024"))
        );
        let hn: Vec<_> = s.servers.iter().filter(|s| s["headnode"] == true).collect();
        assert_eq!(hn.len(), 1);
        assert_eq!(uuid_of(hn[0]), Some(s.headnode_uuid.to_string().as_str()));
    }
}
