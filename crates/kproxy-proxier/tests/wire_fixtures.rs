//! The shared wire fixtures (tests/fixtures/wire/) decode here exactly as the
//! TS codec decodes them (tests/unit/wire.test.ts reads the same files).

use kproxy_proxier::wire::{decode, EndpointRecord, ServicePortRecord};
use serde_json::{json, Value};

fn endpoint(e: &EndpointRecord) -> Value {
    json!({
        "ip": e.ip, "port": e.port, "ready": e.flags.ready, "serving": e.flags.serving, "terminating": e.flags.terminating,
        "isLocal": e.flags.is_local, "cluster": e.flags.cluster, "local": e.flags.local,
    })
}

fn record(r: &ServicePortRecord) -> Value {
    json!({
        "key": r.key, "namespace": r.namespace, "name": r.name, "portName": r.port_name, "protocol": r.protocol,
        "type": r.service_type, "clusterIP": r.cluster_ip, "port": r.port, "nodePort": r.node_port,
        "externalIPs": r.external_ips, "loadBalancerVIPs": r.load_balancer_vips,
        "loadBalancerSourceRanges": r.load_balancer_source_ranges, "sessionAffinity": r.session_affinity,
        "stickyMaxAgeSeconds": r.sticky_max_age_seconds, "externalPolicyLocal": r.external_policy_local,
        "internalPolicyLocal": r.internal_policy_local, "healthCheckNodePort": r.health_check_node_port,
        "trafficDistribution": r.traffic_distribution,
        "endpoints": r.endpoints.iter().map(endpoint).collect::<Vec<_>>(),
    })
}

#[test]
fn v1_fixture_decodes_as_expected() {
    let text = include_str!("../../../tests/fixtures/wire/v1.tsv");
    let want: Value = serde_json::from_str(include_str!("../../../tests/fixtures/wire/v1.json")).unwrap();
    let (records, rejected) = decode(text).expect("the header is valid");
    let got = json!({
        "records": records.iter().map(record).collect::<Vec<_>>(),
        "rejected": rejected.iter().map(|r| json!({ "key": r.key, "reason": r.reason })).collect::<Vec<_>>(),
    });
    assert_eq!(got, want);
}
