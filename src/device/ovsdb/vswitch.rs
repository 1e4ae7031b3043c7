//! The few `Open_vSwitch` schema operations the OVS interface driver needs: inspect a port,
//! add one the way Neutron's `OVSBridge.replace_port` does, update an interface's
//! `external_ids`, delete a port.
//!
//! Schema facts relied on (`vswitch.ovsschema`): `Port` and `Interface` are non-root tables
//! (a row nobody references is garbage-collected at commit), both have a unique index on
//! `name`, and a bridge lists its ports in `Bridge.ports`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{
    as_map, as_uuid, map_value, opt_int, set_elems, string_set, uuid_atom, OvsdbError, Session,
};

/// Neutron's `DEAD_VLAN_TAG`: a new port is parked on VLAN 4095 (dropped by the L2 agent's
/// flows) until neutron-openvswitch-agent binds it and sets the network's local VLAN.
pub const DEAD_VLAN_TAG: i64 = 4095;

/// What the database says about one port name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortView {
    /// The integration bridge exists.
    pub bridge_exists: bool,
    pub port: Option<PortRecord>,
    pub interface: Option<InterfaceRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortRecord {
    pub uuid: String,
    /// Interface row uuids.
    pub interfaces: Vec<String>,
    pub tag: Option<i64>,
    /// Name of the bridge listing this port, if any.
    pub bridge: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRecord {
    pub uuid: String,
    /// `type` column: `internal`, `""` (a system device such as a veth end), ...
    pub kind: String,
    pub external_ids: BTreeMap<String, String>,
    /// `None` until ovs-vswitchd has assigned one (or when it failed: then -1).
    pub ofport: Option<i64>,
}

impl PortView {
    /// The port is on `bridge` with exactly the interface of the same name.
    pub fn is_single_interface_port_on(&self, bridge: &str) -> bool {
        match (&self.port, &self.interface) {
            (Some(p), Some(i)) => {
                p.bridge.as_deref() == Some(bridge) && p.interfaces == [i.uuid.clone()]
            }
            _ => false,
        }
    }
}

fn select(table: &str, where_: Value, columns: &[&str]) -> Value {
    json!({"op": "select", "table": table, "where": where_, "columns": columns})
}

fn rows(v: &Value) -> &[Value] {
    v.get("rows")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn row_uuid(row: &Value) -> Option<String> {
    row.get("_uuid").and_then(as_uuid).map(str::to_owned)
}

impl Session {
    /// Reads the bridges, and the `Port` and `Interface` rows called `name`, in one
    /// transaction.
    pub async fn inspect_port(&mut self, bridge: &str, name: &str) -> Result<PortView, OvsdbError> {
        let what = format!("inspect port {name}");
        let res = self
            .transact(
                &what,
                vec![
                    select("Bridge", json!([]), &["name", "ports"]),
                    select(
                        "Port",
                        json!([["name", "==", name]]),
                        &["_uuid", "interfaces", "tag"],
                    ),
                    select(
                        "Interface",
                        json!([["name", "==", name]]),
                        &["_uuid", "type", "external_ids", "ofport"],
                    ),
                ],
            )
            .await?;
        let mut view = PortView::default();
        let port = rows(&res[1]).first().and_then(|r| {
            Some(PortRecord {
                uuid: row_uuid(r)?,
                interfaces: set_elems(r.get("interfaces")?)
                    .into_iter()
                    .filter_map(as_uuid)
                    .map(str::to_owned)
                    .collect(),
                tag: r.get("tag").and_then(opt_int),
                bridge: None,
            })
        });
        for br in rows(&res[0]) {
            let Some(br_name) = br.get("name").and_then(Value::as_str) else {
                continue;
            };
            if br_name == bridge {
                view.bridge_exists = true;
            }
            if let (Some(p), Some(ports)) = (&port, br.get("ports")) {
                if set_elems(ports)
                    .into_iter()
                    .filter_map(as_uuid)
                    .any(|u| u == p.uuid)
                {
                    view.port = Some(PortRecord {
                        bridge: Some(br_name.to_owned()),
                        ..p.clone()
                    });
                }
            }
        }
        if view.port.is_none() {
            view.port = port;
        }
        view.interface = rows(&res[2]).first().and_then(|r| {
            Some(InterfaceRecord {
                uuid: row_uuid(r)?,
                kind: r
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                external_ids: r.get("external_ids").map(as_map).unwrap_or_default(),
                ofport: r.get("ofport").and_then(opt_int),
            })
        });
        Ok(view)
    }

    /// Whether a bridge called `name` exists.
    pub async fn bridge_exists(&mut self, name: &str) -> Result<bool, OvsdbError> {
        let res = self
            .transact(
                &format!("look up bridge {name}"),
                vec![select("Bridge", json!([["name", "==", name]]), &["name"])],
            )
            .await?;
        Ok(!rows(&res[0]).is_empty())
    }

    /// Adds port `name` with one interface of the same name to `bridge`, in one transaction:
    /// interface `type` (`None`: a system device), interface `external_ids`, port `tag`
    /// [`DEAD_VLAN_TAG`]. Fails (changing nothing) if the bridge does not exist or a port or
    /// interface of that name exists anywhere.
    pub async fn add_port(
        &mut self,
        bridge: &str,
        name: &str,
        kind: Option<&str>,
        external_ids: &[(&str, &str)],
    ) -> Result<(), OvsdbError> {
        let mut iface = json!({
            "name": name,
            "external_ids": map_value(external_ids.iter().copied()),
        });
        if let Some(k) = kind {
            iface["type"] = json!(k);
        }
        let ops = vec![
            // Fails the transaction at once unless exactly this bridge exists.
            json!({"op": "wait", "table": "Bridge", "where": [["name", "==", bridge]],
                   "columns": ["name"], "until": "==", "rows": [{"name": bridge}], "timeout": 0}),
            json!({"op": "insert", "table": "Interface", "row": iface, "uuid-name": "new_iface"}),
            json!({"op": "insert", "table": "Port", "uuid-name": "new_port", "row": {
                "name": name,
                "interfaces": ["named-uuid", "new_iface"],
                "tag": DEAD_VLAN_TAG,
            }}),
            json!({"op": "mutate", "table": "Bridge", "where": [["name", "==", bridge]],
                   "mutations": [["ports", "insert", ["set", [["named-uuid", "new_port"]]]]]}),
            json!({"op": "comment", "comment": format!("neutron-dhcp-agent: add port {name} to {bridge}")}),
        ];
        self.transact(&format!("add port {name} to bridge {bridge}"), ops)
            .await
            .map(|_| ())
    }

    /// Sets the given keys of an interface's `external_ids`, keeping its other keys.
    pub async fn set_interface_external_ids(
        &mut self,
        iface_uuid: &str,
        name: &str,
        ids: &[(&str, &str)],
    ) -> Result<(), OvsdbError> {
        let ops = vec![json!({
            "op": "mutate", "table": "Interface", "where": [["_uuid", "==", uuid_atom(iface_uuid)]],
            "mutations": [
                ["external_ids", "delete", string_set(ids.iter().map(|(k, _)| *k))],
                ["external_ids", "insert", map_value(ids.iter().copied())],
            ],
        })];
        self.transact(&format!("set external_ids of interface {name}"), ops)
            .await
            .map(|_| ())
    }

    /// Removes the port with row uuid `port_uuid` from every bridge listing it; the `Port`
    /// and `Interface` rows are then garbage-collected.
    pub async fn delete_port_row(&mut self, name: &str, port_uuid: &str) -> Result<(), OvsdbError> {
        let ops = vec![
            json!({"op": "mutate", "table": "Bridge",
                   "where": [["ports", "includes", ["set", [uuid_atom(port_uuid)]]]],
                   "mutations": [["ports", "delete", ["set", [uuid_atom(port_uuid)]]]]}),
            json!({"op": "comment", "comment": format!("neutron-dhcp-agent: delete port {name}")}),
        ];
        self.transact(&format!("delete port {name}"), ops)
            .await
            .map(|_| ())
    }

    /// Deletes port `name` from whatever bridge has it; `false` if there is no such port.
    pub async fn delete_port(&mut self, name: &str) -> Result<bool, OvsdbError> {
        let res = self
            .transact(
                &format!("look up port {name}"),
                vec![select("Port", json!([["name", "==", name]]), &["_uuid"])],
            )
            .await?;
        let Some(uuid) = rows(&res[0]).first().and_then(row_uuid) else {
            return Ok(false);
        };
        self.delete_port_row(name, &uuid).await?;
        Ok(true)
    }
}
