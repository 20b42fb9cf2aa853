//! Wire constants: generic netlink (include/uapi/linux/genetlink.h) and the
//! IPVS family (include/uapi/linux/ip_vs.h).

pub const NETLINK_GENERIC: i32 = 16;

// genetlink.h: the controller family, which resolves family names to ids.
pub const GENL_ID_CTRL: u16 = 0x10;
pub const GENL_HDRLEN: usize = 4;
pub const CTRL_CMD_NEWFAMILY: u8 = 1;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;
/// The controller's version as libnl sends it (the kernel ignores it).
pub const CTRL_VERSION: u8 = 1;

pub const IPVS_GENL_NAME: &str = "IPVS";
pub const IPVS_GENL_VERSION: u8 = 1;

// enum IPVS_CMD_*
pub const IPVS_CMD_NEW_SERVICE: u8 = 1;
pub const IPVS_CMD_SET_SERVICE: u8 = 2;
pub const IPVS_CMD_DEL_SERVICE: u8 = 3;
pub const IPVS_CMD_GET_SERVICE: u8 = 4;
pub const IPVS_CMD_NEW_DEST: u8 = 5;
pub const IPVS_CMD_SET_DEST: u8 = 6;
pub const IPVS_CMD_DEL_DEST: u8 = 7;
pub const IPVS_CMD_GET_DEST: u8 = 8;
pub const IPVS_CMD_SET_CONFIG: u8 = 12;
pub const IPVS_CMD_GET_CONFIG: u8 = 13;
/// Only the command of GET_INFO's reply.
pub const IPVS_CMD_SET_INFO: u8 = 14;
pub const IPVS_CMD_GET_INFO: u8 = 15;

// IPVS_CMD_ATTR_*: the first level of every command.
pub const IPVS_CMD_ATTR_SERVICE: u16 = 1;
pub const IPVS_CMD_ATTR_DEST: u16 = 2;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP: u16 = 4;
pub const IPVS_CMD_ATTR_TIMEOUT_TCP_FIN: u16 = 5;
pub const IPVS_CMD_ATTR_TIMEOUT_UDP: u16 = 6;

// IPVS_SVC_ATTR_*, nested in IPVS_CMD_ATTR_SERVICE.
pub const IPVS_SVC_ATTR_AF: u16 = 1; // u16, host order
pub const IPVS_SVC_ATTR_PROTOCOL: u16 = 2; // u16, host order
pub const IPVS_SVC_ATTR_ADDR: u16 = 3; // union nf_inet_addr, 16 bytes
pub const IPVS_SVC_ATTR_PORT: u16 = 4; // be16
pub const IPVS_SVC_ATTR_FWMARK: u16 = 5;
pub const IPVS_SVC_ATTR_SCHED_NAME: u16 = 6; // NUL-terminated
pub const IPVS_SVC_ATTR_FLAGS: u16 = 7; // struct ip_vs_flags { u32 flags; u32 mask; }
pub const IPVS_SVC_ATTR_TIMEOUT: u16 = 8; // u32 seconds
pub const IPVS_SVC_ATTR_NETMASK: u16 = 9; // 4 raw bytes: a be32 mask (v4) or a host-order prefix length (v6)
pub const IPVS_SVC_ATTR_PE_NAME: u16 = 11;

// IPVS_DEST_ATTR_*, nested in IPVS_CMD_ATTR_DEST.
pub const IPVS_DEST_ATTR_ADDR: u16 = 1;
pub const IPVS_DEST_ATTR_PORT: u16 = 2; // be16
pub const IPVS_DEST_ATTR_FWD_METHOD: u16 = 3; // u32
pub const IPVS_DEST_ATTR_WEIGHT: u16 = 4; // u32 (the kernel refuses above i32::MAX)
pub const IPVS_DEST_ATTR_U_THRESH: u16 = 5;
pub const IPVS_DEST_ATTR_L_THRESH: u16 = 6;
pub const IPVS_DEST_ATTR_ACTIVE_CONNS: u16 = 7;
pub const IPVS_DEST_ATTR_INACT_CONNS: u16 = 8;
pub const IPVS_DEST_ATTR_PERSIST_CONNS: u16 = 9;
pub const IPVS_DEST_ATTR_ADDR_FAMILY: u16 = 11; // u16; absent from kernels before 4.2
pub const IPVS_DEST_ATTR_TUN_TYPE: u16 = 13; // u8
pub const IPVS_DEST_ATTR_TUN_PORT: u16 = 14; // be16
pub const IPVS_DEST_ATTR_TUN_FLAGS: u16 = 15; // u16

// IPVS_INFO_ATTR_*, top level of GET_INFO's reply.
pub const IPVS_INFO_ATTR_VERSION: u16 = 1;
pub const IPVS_INFO_ATTR_CONN_TAB_SIZE: u16 = 2;

// IP_VS_CONN_F_* forwarding methods.
pub const IP_VS_CONN_F_MASQ: u32 = 0;
pub const IP_VS_CONN_F_LOCALNODE: u32 = 1;
pub const IP_VS_CONN_F_TUNNEL: u32 = 2;
pub const IP_VS_CONN_F_DROUTE: u32 = 3;
pub const IP_VS_CONN_F_FWD_MASK: u32 = 7;

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

/// IP_VS_VERSION_CODE of every kernel since 2.6.
pub const IP_VS_VERSION_CODE: u32 = 0x010201;
