//! Canonical text: `render` prints services and destinations exactly as
//! `ipvsadm-save -n` (ipvsadm 1.31) does, sorted, so `ipvsadm --restore` reads it
//! back; `render_ops` prints ops in ipvsadm's command syntax, one per line.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::*;

/// ipvsadm's protocol option. Other protocols have none: the line cannot be restored.
fn protocol_option(p: u8) -> String {
    match p {
        IPPROTO_TCP => "-t".into(),
        IPPROTO_UDP => "-u".into(),
        IPPROTO_SCTP => "--sctp-service".into(),
        p => format!("--protocol-{p}"),
    }
}

/// ipvsadm's name for a virtual server: `-t 10.96.0.1:80`.
pub fn service_id(k: &ServiceKey) -> String {
    format!("{} {}", protocol_option(k.protocol), SocketAddr::new(k.addr, k.port))
}

/// The names ipvsadm gives the scheduler flags: sh and mh name theirs.
fn sched_flag_names(scheduler: &str) -> [&'static str; 3] {
    match scheduler {
        "sh" => ["sh-fallback", "sh-port", "flag-3"],
        "mh" => ["mh-fallback", "mh-port", "flag-3"],
        _ => ["flag-1", "flag-2", "flag-3"],
    }
}

/// What follows the service in -A / -E, in ipvsadm-save's order: -s, -p [-M], -o, -b.
fn service_options(s: &Service) -> String {
    let mut out = format!(" -s {}", s.scheduler);
    if s.flags & FLAG_PERSISTENT != 0 {
        let _ = write!(out, " -p {}", s.timeout);
        // ipvsadm prints a netmask only for persistent services, and only when it narrows.
        if s.netmask != full_netmask(&s.key.addr) {
            match s.key.addr {
                IpAddr::V4(_) => {
                    let _ = write!(out, " -M {}", Ipv4Addr::from(s.netmask));
                }
                IpAddr::V6(_) => {
                    let _ = write!(out, " -M {}", s.netmask);
                }
            }
        }
    }
    if s.flags & FLAG_ONEPACKET != 0 {
        out.push_str(" -o");
    }
    let names = sched_flag_names(&s.scheduler);
    let set: Vec<&str> =
        [FLAG_SCHED1, FLAG_SCHED2, FLAG_SCHED3].iter().zip(names).filter(|(f, _)| s.flags & **f != 0).map(|(_, n)| n).collect();
    if !set.is_empty() {
        let _ = write!(out, " -b {}", set.join(","));
    }
    out
}

fn forward_option(f: Forward) -> &'static str {
    match f {
        Forward::Masq => "-m",
        // ipvsadm has no option for local delivery; the kernel treats it as direct routing to itself.
        Forward::Local | Forward::Route => "-g",
        Forward::Tunnel => "-i",
    }
}

/// `-r addr:port -m -w 1`. Thresholds only with `thresholds` (ipvsadm-save never prints them).
fn dest_options(d: &Destination, thresholds: bool) -> String {
    let mut out = format!(" -r {} {} -w {}", SocketAddr::new(d.key.addr, d.key.port), forward_option(d.forward), d.weight);
    if thresholds && d.upper_threshold != 0 {
        let _ = write!(out, " -x {}", d.upper_threshold);
    }
    if thresholds && d.lower_threshold != 0 {
        let _ = write!(out, " -y {}", d.lower_threshold);
    }
    if d.forward == Forward::Tunnel {
        out.push_str(" --tun-type ipip"); // the only tunnel type this crate sends
    }
    out
}

/// `ipvsadm-save -n` of these services: sorted by key, each followed by its destinations sorted by key.
pub fn render(services: &[(Service, Vec<Destination>)]) -> String {
    let mut sorted: Vec<&(Service, Vec<Destination>)> = services.iter().collect();
    sorted.sort_by_key(|(s, _)| s.key);
    let mut out = String::new();
    for (s, dests) in sorted {
        let id = service_id(&s.key);
        let _ = writeln!(out, "-A {id}{}", service_options(s));
        let mut dests: Vec<&Destination> = dests.iter().collect();
        dests.sort_by_key(|d| d.key);
        for d in dests {
            let _ = writeln!(out, "-a {id}{}", dest_options(d, false));
        }
    }
    out
}

/// The ops as ipvsadm commands (without the leading `ipvsadm`), one per line, in order.
pub fn render_ops(ops: &[Op]) -> String {
    let mut out = String::new();
    for op in ops {
        let id = service_id(op.service());
        let _ = match op {
            Op::AddService(s) => writeln!(out, "-A {id}{}", service_options(s)),
            Op::EditService(s) => writeln!(out, "-E {id}{}", service_options(s)),
            Op::DeleteService(_) => writeln!(out, "-D {id}"),
            Op::AddDest(_, d) => writeln!(out, "-a {id}{}", dest_options(d, true)),
            Op::EditDest(_, d) => writeln!(out, "-e {id}{}", dest_options(d, true)),
            Op::DeleteDest(_, k) => writeln!(out, "-d {id} -r {}", SocketAddr::new(k.addr, k.port)),
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str, protocol: u8) -> ServiceKey {
        let a: SocketAddr = s.parse().unwrap();
        ServiceKey { addr: a.ip(), protocol, port: a.port() }
    }

    fn dest(s: &str, weight: u32, forward: Forward) -> Destination {
        let a: SocketAddr = s.parse().unwrap();
        Destination { forward, ..Destination::masq(DestKey { addr: a.ip(), port: a.port() }, weight) }
    }

    #[test]
    fn renders_what_ipvsadm_save_printed_for_the_same_services() {
        // Each line is what ipvsadm-save -n printed in the test VM (ipvsadm 1.31, Linux 6.1),
        // in our order: by address, then protocol, then port (ipvsadm's is the kernel's hash order).
        let services = vec![
            (Service::new(key("[fd00:96::10]:80", IPPROTO_TCP), "rr"), vec![dest("[fd00:244::2]:8080", 1, Forward::Masq)]),
            (
                Service::new(key("10.96.0.10:53", IPPROTO_UDP), "wrr").with_flags(FLAG_ONEPACKET),
                vec![dest("10.244.1.4:53", 2, Forward::Tunnel), dest("10.244.1.3:53", 0, Forward::Route)],
            ),
            (Service { netmask: 0xffff_ff00, ..Service::new(key("10.96.0.13:80", IPPROTO_TCP), "rr").persistent(60) }, vec![]),
            (Service::new(key("10.96.0.12:443", IPPROTO_TCP), "sh").with_flags(FLAG_SCHED1 | FLAG_SCHED2), vec![]),
            (Service::new(key("10.96.0.11:9000", IPPROTO_SCTP), "rr"), vec![]),
            (
                Service { netmask: 64, ..Service::new(key("[fd00::5]:53", IPPROTO_UDP), "rr").persistent(60) }
                    .with_flags(FLAG_ONEPACKET | FLAG_SCHED2),
                vec![],
            ),
            (Service::new(key("10.96.0.14:443", IPPROTO_TCP), "mh").with_flags(FLAG_SCHED2), vec![]),
            (Service { netmask: 0xffff_0000, ..Service::new(key("10.96.0.15:443", IPPROTO_TCP), "rr") }, vec![]),
        ];
        let want = "\
-A -u 10.96.0.10:53 -s wrr -o
-a -u 10.96.0.10:53 -r 10.244.1.3:53 -g -w 0
-a -u 10.96.0.10:53 -r 10.244.1.4:53 -i -w 2 --tun-type ipip
-A --sctp-service 10.96.0.11:9000 -s rr
-A -t 10.96.0.12:443 -s sh -b sh-fallback,sh-port
-A -t 10.96.0.13:80 -s rr -p 60 -M 255.255.255.0
-A -t 10.96.0.14:443 -s mh -b mh-port
-A -t 10.96.0.15:443 -s rr
-A -u [fd00::5]:53 -s rr -p 60 -M 64 -o -b flag-2
-A -t [fd00:96::10]:80 -s rr
-a -t [fd00:96::10]:80 -r [fd00:244::2]:8080 -m -w 1
";
        assert_eq!(render(&services), want);
    }

    #[test]
    fn ops_render_as_ipvsadm_commands() {
        let k = key("10.96.0.10:80", IPPROTO_TCP);
        let mut d = dest("10.244.1.2:8080", 1, Forward::Masq);
        let ops = vec![
            Op::AddService(Service::new(k, "rr")),
            Op::EditService(Service::new(k, "wrr").persistent(600)),
            Op::AddDest(k, d.clone()),
            Op::EditDest(k, {
                d.upper_threshold = 100;
                d.lower_threshold = 10;
                d.clone()
            }),
            Op::DeleteDest(k, d.key),
            Op::DeleteService(k),
        ];
        assert_eq!(
            render_ops(&ops),
            "\
-A -t 10.96.0.10:80 -s rr
-E -t 10.96.0.10:80 -s wrr -p 600
-a -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1
-e -t 10.96.0.10:80 -r 10.244.1.2:8080 -m -w 1 -x 100 -y 10
-d -t 10.96.0.10:80 -r 10.244.1.2:8080
-D -t 10.96.0.10:80
"
        );
    }
}
