//! Fuzz targets for the netlink readers (stable Rust, run by `cargo test`; see
//! tests/fuzzkit/mod.rs and scripts/fuzz.sh for longer runs).

#[path = "fuzzkit/mod.rs"]
mod fuzzkit;

use kproxy_netlink::*;

/// Walks every message, its attributes (recursing into nests, to a depth), and
/// reads NLMSG_ERROR. Must not panic; whatever messages() yields must lie inside
/// `data` and re-frame to the same messages.
pub fn fuzz_messages(data: &[u8]) {
    fn walk(b: &[u8], depth: u32) {
        for a in attrs(b) {
            assert!(a.payload.len() + NLA_HDRLEN <= b.len());
            let _ = a.str();
            let _ = a.u32_be();
            if depth < 8 {
                walk(a.payload, depth + 1);
            }
        }
    }
    let msgs: Vec<NlMsg<'_>> = messages(data).collect();
    let mut again = MsgBuffer::default();
    for m in &msgs {
        assert!(m.payload.len() + NLMSG_HDRLEN <= data.len());
        walk(m.payload, 0);
        walk(m.payload.get(4..).unwrap_or(&[]), 0);
        let _ = NlMsgError::parse(m);
        again.begin_msg(m.ty, m.flags, m.seq);
        again.put_raw(m.payload);
        again.end_msg();
    }
    // Round trip: the messages re-encode to a datagram that parses to the same ones.
    let back: Vec<NlMsg<'_>> = messages(again.as_bytes()).collect();
    assert_eq!(back.len(), msgs.len());
    for (a, b) in msgs.iter().zip(&back) {
        // put_raw pads the payload to 4 bytes with zeros.
        assert_eq!((a.ty, a.flags, a.seq), (b.ty, b.flags, b.seq));
        assert!(b.payload.starts_with(a.payload) && b.payload.len() == align4(a.payload.len()));
    }
    let mut t = AckTally::new(1, 4);
    t.feed(data);
}

fn corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = MsgBuffer::default();
    for seq in 1..=3 {
        b.begin_msg(0x0a03, NLM_F_REQUEST | NLM_F_ACK, seq);
        b.put_raw(&[2, 0, 0, 0]);
        b.attr_str(1, "kproxy");
        let n = b.nest_start(4);
        b.attr_u32_be(1, 3);
        let n2 = b.nest_start(2);
        b.attr_u8(1, 7);
        b.nest_end(n2);
        b.nest_end(n);
        b.end_msg();
    }
    out.push(b.as_bytes().to_vec());
    // An extended-ack NLMSG_ERROR, uncapped (the request echoed) and capped.
    for (flags, echo) in [(NLM_F_ACK_TLVS, true), (NLM_F_CAPPED | NLM_F_ACK_TLVS, false)] {
        let mut req = MsgBuffer::default();
        req.begin_msg(0x0a06, NLM_F_REQUEST, 9);
        req.put_raw(&[2, 0, 0, 0]);
        req.attr_str(1, "filter");
        req.end_msg();
        let mut p = (-2i32).to_ne_bytes().to_vec();
        p.extend_from_slice(if echo { req.as_bytes() } else { &req.as_bytes()[..16] });
        let mut tl = MsgBuffer::default();
        tl.attr_str(NLMSGERR_ATTR_MSG, "no such chain");
        tl.attr(NLMSGERR_ATTR_OFFS, &20u32.to_ne_bytes());
        p.extend_from_slice(tl.as_bytes());
        let mut e = MsgBuffer::default();
        e.begin_msg(NLMSG_ERROR, flags, 9);
        e.put_raw(&p);
        e.end_msg();
        out.push(e.as_bytes().to_vec());
    }
    let mut d = MsgBuffer::default();
    d.begin_msg(NLMSG_DONE, NLM_F_MULTI, 2);
    d.put_raw(&0i32.to_ne_bytes());
    d.end_msg();
    out.push(d.as_bytes().to_vec());
    out
}

#[test]
fn fuzz_netlink_messages() {
    fuzzkit::run("netlink messages", 1_000_000, &corpus(), fuzz_messages);
}
