//! Our netlink encoding of every rule, checked without a kernel against how
//! nft encodes the same rules: tests/golden/*.netlink is `nft --debug=netlink`
//! output (scripts/capture-netlink-golden.sh) for tests/golden/*.nft. Our
//! batch is decoded and printed in that same format, then compared.

use common::Model;
use kproxy_netlink::{attrs, messages, Attr};
use kproxy_nftables::consts::*;
use kproxy_nftables::encode::encode_batch;
use kproxy_nftables::Family;

mod common;
use common::golden_model;

fn model(family: Family) -> Model {
    golden_model(family)
}

/// nft names 16-byte-aligned registers NFT_REG_1..4 and the others NFT_REG32_xx.
fn reg(a: &Attr<'_>) -> String {
    let r = a.u32_be().unwrap_or(u32::MAX);
    if r >= NFT_REG32_00 && (r - NFT_REG32_00).is_multiple_of(4) {
        format!("{}", (r - NFT_REG32_00) / 4 + 1)
    } else {
        format!("{r}")
    }
}

fn words(data: &[u8]) -> String {
    data.chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            format!("0x{:08x}", u32::from_ne_bytes(w))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn value(a: &Attr<'_>) -> String {
    attrs(a.payload).find(|x| x.ty == NFTA_DATA_VALUE).map(|v| words(v.payload)).unwrap_or_default()
}

fn verdict(a: &Attr<'_>) -> String {
    let v = attrs(a.payload).find(|x| x.ty == NFTA_DATA_VERDICT).expect("verdict");
    let mut code = 0i32;
    let mut chain = "";
    for x in attrs(v.payload) {
        match x.ty {
            NFTA_VERDICT_CODE => code = x.u32_be().unwrap_or(0) as i32,
            NFTA_VERDICT_CHAIN => chain = x.str().unwrap_or(""),
            _ => {}
        }
    }
    match code {
        NFT_JUMP => format!("jump -> {chain}"),
        NFT_GOTO => format!("goto -> {chain}"),
        NFT_RETURN => "return".into(),
        NF_ACCEPT => "accept".into(),
        NF_DROP => "drop".into(),
        c => format!("verdict {c}"),
    }
}

fn expr_line(name: &str, data: &[u8], family: Family) -> String {
    let a: Vec<Attr<'_>> = attrs(data).collect();
    let get = |t: u16| a.iter().find(|x| x.ty == t).copied();
    let num = |t: u16| get(t).and_then(|x| x.u32_be()).unwrap_or(0);
    match name {
        "payload" => {
            let base = ["link layer", "network", "transport", "inner"][num(NFTA_PAYLOAD_BASE) as usize];
            format!(
                "payload load {}b @ {base} header + {} => reg {}",
                num(NFTA_PAYLOAD_LEN),
                num(NFTA_PAYLOAD_OFFSET),
                reg(&get(NFTA_PAYLOAD_DREG).unwrap())
            )
        }
        "meta" => {
            let key = match num(NFTA_META_KEY) {
                NFT_META_MARK => "mark",
                NFT_META_L4PROTO => "l4proto",
                NFT_META_IIFNAME => "iifname",
                _ => "?",
            };
            match get(NFTA_META_DREG) {
                Some(d) => format!("meta load {key} => reg {}", reg(&d)),
                None => format!("meta set {key} with reg {}", reg(&get(NFTA_META_SREG).unwrap())),
            }
        }
        "ct" => {
            let key = match num(NFTA_CT_KEY) {
                NFT_CT_STATE => "state",
                NFT_CT_STATUS => "status",
                NFT_CT_DST_IP => "dst_ip",
                NFT_CT_DST_IP6 => "dst_ip6",
                NFT_CT_PROTO_DST => "proto_dst",
                _ => "?",
            };
            let dir = match get(NFTA_CT_DIRECTION).map(|d| d.payload.first().copied()) {
                Some(Some(IP_CT_DIR_ORIGINAL)) => " , dir original",
                Some(_) => " , dir reply",
                None => "",
            };
            format!("ct load {key} => reg {}{dir}", reg(&get(NFTA_CT_DREG).unwrap()))
        }
        "cmp" => {
            let op = if num(NFTA_CMP_OP) == NFT_CMP_EQ { "eq" } else { "neq" };
            format!("cmp {op} reg {} {}", reg(&get(NFTA_CMP_SREG).unwrap()), value(&get(NFTA_CMP_DATA).unwrap()))
        }
        "bitwise" => format!(
            "bitwise reg {} = ( reg {} & {} ) ^ {}",
            reg(&get(NFTA_BITWISE_DREG).unwrap()),
            reg(&get(NFTA_BITWISE_SREG).unwrap()),
            value(&get(NFTA_BITWISE_MASK).unwrap()),
            value(&get(NFTA_BITWISE_XOR).unwrap())
        ),
        "lookup" => {
            let mut s = format!("lookup reg {} set {}", reg(&get(NFTA_LOOKUP_SREG).unwrap()), get(NFTA_LOOKUP_SET).unwrap().str().unwrap());
            if let Some(d) = get(NFTA_LOOKUP_DREG) {
                s += &format!(" dreg {}", reg(&d));
            }
            s
        }
        "immediate" => {
            let data = get(NFTA_IMMEDIATE_DATA).unwrap();
            let v = if num(NFTA_IMMEDIATE_DREG) == 0 { verdict(&data) } else { value(&data) };
            format!("immediate reg {} {v}", reg(&get(NFTA_IMMEDIATE_DREG).unwrap()))
        }
        "fib" => {
            let which = if num(NFTA_FIB_FLAGS) & NFTA_FIB_F_DADDR != 0 { "daddr" } else { "saddr" };
            format!("fib {which} type => reg {}", reg(&get(NFTA_FIB_DREG).unwrap()))
        }
        "dynset" => {
            let mut s = format!(
                "dynset update reg_key {} set {}",
                reg(&get(NFTA_DYNSET_SREG_KEY).unwrap()),
                get(NFTA_DYNSET_SET_NAME).unwrap().str().unwrap()
            );
            if let Some(d) = get(NFTA_DYNSET_SREG_DATA) {
                s += &format!(" sreg_data {}", reg(&d));
            }
            if let Some(t) = get(NFTA_DYNSET_TIMEOUT) {
                s += &format!(" timeout {}ms", u64::from_be_bytes(t.payload.try_into().unwrap()));
            }
            s
        }
        "masq" => format!("masq flags 0x{:x}", num(NFTA_MASQ_FLAGS)),
        "reject" => format!("reject type {} code {}", num(NFTA_REJECT_TYPE), get(NFTA_REJECT_ICMP_CODE).map(|c| c.payload[0]).unwrap_or(0)),
        "numgen" => {
            let mut s = format!("numgen reg {} = random mod {}", reg(&get(NFTA_NG_DREG).unwrap()), num(NFTA_NG_MODULUS));
            if num(NFTA_NG_OFFSET) != 0 {
                s += &format!(" offset {}", num(NFTA_NG_OFFSET));
            }
            s
        }
        "nat" => {
            let mut s = format!(
                "nat dnat {} addr_min reg {} proto_min reg {}",
                family.keyword(),
                reg(&get(NFTA_NAT_REG_ADDR_MIN).unwrap()),
                reg(&get(NFTA_NAT_REG_PROTO_MIN).unwrap())
            );
            if let Some(f) = get(NFTA_NAT_FLAGS) {
                s += &format!(" flags 0x{:x}", f.u32_be().unwrap_or(0));
            }
            s
        }
        other => format!("unknown expression {other}"),
    }
}

/// Every NEWRULE of the batch as an nft debug block: "fam table chain" + "  [ expr ]" lines.
fn our_rule_blocks(family: Family) -> Vec<String> {
    let tx = model(family).full_transaction();
    let batch = encode_batch(&tx, 1, None);
    let mut blocks = Vec::new();
    for m in messages(batch.bytes.as_bytes()) {
        if m.ty != nft_type(NFT_MSG_NEWRULE) {
            continue;
        }
        let top: Vec<Attr<'_>> = attrs(&m.payload[4..]).collect();
        let chain = top.iter().find(|a| a.ty == NFTA_RULE_CHAIN).and_then(|a| a.str()).unwrap();
        let mut block = format!("{} kube-proxy {chain}\n", family.keyword());
        let exprs = top.iter().find(|a| a.ty == NFTA_RULE_EXPRESSIONS).unwrap();
        for e in attrs(exprs.payload) {
            let parts: Vec<Attr<'_>> = attrs(e.payload).collect();
            let name = parts.iter().find(|a| a.ty == NFTA_EXPR_NAME).and_then(|a| a.str()).unwrap();
            let data = parts.iter().find(|a| a.ty == NFTA_EXPR_DATA).map(|a| a.payload).unwrap_or(&[]);
            block += &format!("  [ {} ]\n", expr_line(name, data, family));
        }
        blocks.push(block);
    }
    blocks.sort();
    blocks
}

fn nft_rule_blocks(golden: &str, family: Family) -> Vec<String> {
    let head = format!("{} kube-proxy ", family.keyword());
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in golden.lines() {
        if line.starts_with(&head) && !line.contains("(null)") {
            cur = Some(format!("{line}\n"));
        } else if line.starts_with("  [") {
            if let Some(b) = cur.as_mut() {
                b.push_str(line);
                b.push('\n');
            }
        } else if let Some(b) = cur.take() {
            blocks.push(b);
        }
    }
    blocks.extend(cur);
    blocks.sort();
    blocks
}

#[test]
fn rules_are_encoded_as_nft_encodes_them() {
    for (family, golden, text) in [
        (Family::Ip, include_str!("golden/ipv4.netlink"), include_str!("golden/ipv4.nft")),
        (Family::Ip6, include_str!("golden/ipv6.netlink"), include_str!("golden/ipv6.nft")),
    ] {
        // The golden capture must come from the ruleset this model renders today.
        assert_eq!(model(family).render_text(), text, "re-run UPDATE_GOLDEN and scripts/capture-netlink-golden.sh");
        let ours = our_rule_blocks(family);
        let nft = nft_rule_blocks(golden, family);
        assert!(nft.len() >= 15, "golden has only {} rules", nft.len());
        assert_eq!(ours.join("\n"), nft.join("\n"), "{family:?} rules differ from nft's encoding");
    }
}
