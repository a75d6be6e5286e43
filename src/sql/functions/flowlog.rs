//! Flow-log functions no peer ships: names for protocol numbers, TCP flag
//! bits and traffic-path codes, and address tests on plain strings.
//!
//! | function | returns |
//! |---|---|
//! | `protocol_name(protocol)` | the IANA keyword (`TCP`, `UDP`, `ICMP`, `IPv6-ICMP`, …), NULL if unassigned |
//! | `tcp_flag_names(tcp_flags)` | the set bits, low to high: `FIN,SYN,RST,PSH,ACK,URG,ECE,CWR` (`18` → `SYN,ACK`; `0` → empty) |
//! | `traffic_path_name(traffic_path)` | what AWS's egress path code 1–8 means |
//! | `is_private_ip(ip)` | true for RFC 1918 and RFC 6598 IPv4 and `fc00::/7` IPv6 addresses |
//! | `cidr_contains(cidr, ip)` | whether the IPv4 or IPv6 CIDR holds the address |
//!
//! NULL in gives NULL out; an address that does not parse gives NULL (data
//! is dirty), a CIDR that does not parse is an error (it is the query's).

use std::net::IpAddr;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Every function of this family.
pub(crate) fn functions() -> Vec<ScalarUDF> {
    vec![
        ScalarUDF::new_from_impl(CodeName::new("protocol_name", protocol_name)),
        ScalarUDF::new_from_impl(CodeName::new("tcp_flag_names", tcp_flag_names)),
        ScalarUDF::new_from_impl(CodeName::new("traffic_path_name", traffic_path_name)),
        ScalarUDF::new_from_impl(IsPrivateIp::new()),
        ScalarUDF::new_from_impl(CidrContains::new()),
    ]
}

/// IANA protocol keyword for an IP protocol number.
pub(crate) fn protocol_name(number: i64) -> Option<String> {
    const NAMES: &[(i64, &str)] = &[
        (0, "HOPOPT"),
        (1, "ICMP"),
        (2, "IGMP"),
        (3, "GGP"),
        (4, "IPv4"),
        (5, "ST"),
        (6, "TCP"),
        (7, "CBT"),
        (8, "EGP"),
        (9, "IGP"),
        (12, "PUP"),
        (17, "UDP"),
        (20, "HMP"),
        (22, "XNS-IDP"),
        (27, "RDP"),
        (29, "ISO-TP4"),
        (33, "DCCP"),
        (36, "XTP"),
        (37, "DDP"),
        (41, "IPv6"),
        (43, "IPv6-Route"),
        (44, "IPv6-Frag"),
        (45, "IDRP"),
        (46, "RSVP"),
        (47, "GRE"),
        (50, "ESP"),
        (51, "AH"),
        (55, "MOBILE"),
        (58, "IPv6-ICMP"),
        (59, "IPv6-NoNxt"),
        (60, "IPv6-Opts"),
        (88, "EIGRP"),
        (89, "OSPFIGP"),
        (94, "IPIP"),
        (97, "ETHERIP"),
        (98, "ENCAP"),
        (103, "PIM"),
        (108, "IPComp"),
        (112, "VRRP"),
        (115, "L2TP"),
        (124, "ISIS"),
        (132, "SCTP"),
        (133, "FC"),
        (135, "Mobility Header"),
        (136, "UDPLite"),
        (137, "MPLS-in-IP"),
        (139, "HIP"),
        (140, "Shim6"),
        (141, "WESP"),
        (142, "ROHC"),
        (143, "Ethernet"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, name)| name.to_string())
}

/// The names of the set TCP flag bits, low bit first.
pub(crate) fn tcp_flag_names(flags: i64) -> Option<String> {
    const BITS: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
    if !(0..=255).contains(&flags) {
        return None;
    }
    Some(
        BITS.iter()
            .enumerate()
            .filter(|(bit, _)| flags & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// What an egress traffic-path code means (AWS's table, codes 1 to 8).
pub(crate) fn traffic_path_name(code: i64) -> Option<String> {
    let name = match code {
        1 => "same VPC",
        2 => "internet gateway or gateway VPC endpoint",
        3 => "virtual private gateway",
        4 => "intra-Region VPC peering",
        5 => "inter-Region VPC peering",
        6 => "local gateway",
        7 => "gateway VPC endpoint (Nitro)",
        8 => "internet gateway (Nitro)",
        _ => return None,
    };
    Some(name.to_string())
}

/// An integer code mapped to a name. Function names are unique, so they
/// alone decide equality (comparing function pointers is unreliable).
#[derive(Debug)]
struct CodeName {
    name: &'static str,
    signature: Signature,
    map: fn(i64) -> Option<String>,
}

impl CodeName {
    fn new(name: &'static str, map: fn(i64) -> Option<String>) -> Self {
        Self {
            name,
            signature: Signature::uniform(1, vec![DataType::Int64], Volatility::Immutable),
            map,
        }
    }
}

impl PartialEq for CodeName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for CodeName {}

impl std::hash::Hash for CodeName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for CodeName {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let input = args.args[0].to_array(args.number_rows)?;
        let input = datafusion::arrow::compute::cast(&input, &DataType::Int64)?;
        let out: StringArray = input
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| v.and_then(self.map))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

fn text_array(value: &ColumnarValue, rows: usize) -> Result<ArrayRef> {
    let array = value.to_array(rows)?;
    Ok(datafusion::arrow::compute::cast(&array, &DataType::Utf8)?)
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            a == 10
                || (a == 172 && (16..32).contains(&b))
                || (a == 192 && b == 168)
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct IsPrivateIp {
    signature: Signature,
}

impl IsPrivateIp {
    fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IsPrivateIp {
    fn name(&self) -> &str {
        "is_private_ip"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ips = text_array(&args.args[0], args.number_rows)?;
        let out: BooleanArray = ips
            .as_string::<i32>()
            .iter()
            .map(|ip| ip.and_then(|ip| ip.parse::<IpAddr>().ok()).map(is_private))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

/// A parsed CIDR block.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let bad = || {
            DataFusionError::Execution(format!(
                "`{text}` is not a CIDR block (such as 10.0.0.0/8 or 2001:db8::/32)"
            ))
        };
        let (address, prefix) = text.trim().split_once('/').ok_or_else(bad)?;
        let network: IpAddr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().map_err(|_| bad())?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct CidrContains {
    signature: Signature,
}

impl CidrContains {
    fn new() -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CidrContains {
    fn name(&self) -> &str {
        "cidr_contains"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let cidrs = text_array(&args.args[0], args.number_rows)?;
        let ips = text_array(&args.args[1], args.number_rows)?;
        let mut last: Option<(String, Cidr)> = None;
        let mut out = Vec::with_capacity(args.number_rows);
        for (cidr, ip) in cidrs
            .as_string::<i32>()
            .iter()
            .zip(ips.as_string::<i32>().iter())
        {
            let (Some(cidr), Some(ip)) = (cidr, ip) else {
                out.push(None);
                continue;
            };
            // The CIDR is nearly always a constant: parse it once.
            let block = match &last {
                Some((text, block)) if text == cidr => *block,
                _ => {
                    let block = Cidr::parse(cidr)?;
                    last = Some((cidr.to_string(), block));
                    block
                }
            };
            out.push(ip.parse::<IpAddr>().ok().map(|ip| block.contains(ip)));
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(protocol_name(6).as_deref(), Some("TCP"));
        assert_eq!(protocol_name(58).as_deref(), Some("IPv6-ICMP"));
        assert_eq!(protocol_name(253), None);
        assert_eq!(tcp_flag_names(18).as_deref(), Some("SYN,ACK"));
        assert_eq!(tcp_flag_names(19).as_deref(), Some("FIN,SYN,ACK"));
        assert_eq!(tcp_flag_names(0).as_deref(), Some(""));
        assert_eq!(
            traffic_path_name(8).as_deref(),
            Some("internet gateway (Nitro)")
        );
        assert_eq!(traffic_path_name(9), None);
    }

    #[test]
    fn cidrs() {
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains("10.255.1.2".parse().unwrap()));
        assert!(!block.contains("11.0.0.1".parse().unwrap()));
        assert!(!block.contains("::1".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8:1234:a100::/56").unwrap();
        assert!(v6.contains("2001:db8:1234:a100:8d6e:3477:df66:f105".parse().unwrap()));
        assert!(!v6.contains("2001:db8:1234:a200::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("10.0.0.0").is_err());
        assert!(is_private("172.31.16.139".parse().unwrap()));
        assert!(!is_private("172.32.0.1".parse().unwrap()));
        assert!(is_private("fd00::1".parse().unwrap()));
        assert!(!is_private("2001:db8::1".parse().unwrap()));
    }
}
