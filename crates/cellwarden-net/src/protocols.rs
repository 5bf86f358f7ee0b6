//! The core network protocols told apart in flow records by transport and port (GTP-C, GTP-U,
//! Diameter, SIGTRAN, RADIUS), with the asset roles whose hosts speak them.

use crate::assets::GTP_ROLES;

/// A core network protocol, told by transport and port.
#[derive(
    serde::Serialize, serde::Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
)]
pub enum Core {
    /// GTP control plane (UDP 2123).
    GtpC,
    /// GTP user plane (UDP 2152).
    GtpU,
    /// Diameter (TCP or SCTP 3868).
    Diameter,
    /// SIGTRAN: M3UA (2905), SUA (14001), M2PA (3565), or any SCTP.
    Sigtran,
    /// RADIUS authentication and accounting (UDP 1812/1813, 1645/1646).
    Radius,
}

impl Core {
    /// Every protocol, in the order roles are named.
    pub const ALL: [Core; 5] = [
        Core::GtpU,
        Core::GtpC,
        Core::Diameter,
        Core::Sigtran,
        Core::Radius,
    ];

    /// The protocol of a flow (transport in lower case, ports as seen), if a core one.
    pub fn of(proto: &str, src_port: Option<u16>, dst_port: Option<u16>) -> Option<Core> {
        let ports = [dst_port, src_port];
        let on = |p: u16| ports.contains(&Some(p));
        match proto {
            "udp" if on(2152) => Some(Core::GtpU),
            "udp" if on(2123) => Some(Core::GtpC),
            "udp" if on(1812) || on(1813) || on(1645) || on(1646) => Some(Core::Radius),
            "tcp" | "sctp" if on(3868) => Some(Core::Diameter),
            "sctp" => Some(Core::Sigtran),
            "tcp" if on(2905) || on(14001) || on(3565) => Some(Core::Sigtran),
            _ => None,
        }
    }

    /// Its name in alerts.
    pub fn name(self) -> &'static str {
        match self {
            Core::GtpC => "GTP-C",
            Core::GtpU => "GTP-U",
            Core::Diameter => "Diameter",
            Core::Sigtran => "SIGTRAN",
            Core::Radius => "RADIUS",
        }
    }

    /// Its port, for allow entries.
    pub fn port(self) -> Option<u16> {
        match self {
            Core::GtpC => Some(2123),
            Core::GtpU => Some(2152),
            Core::Diameter => Some(3868),
            Core::Sigtran => Some(2905),
            Core::Radius => Some(1812),
        }
    }

    /// Asset roles whose hosts speak it.
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Core::GtpC | Core::GtpU => GTP_ROLES,
            Core::Diameter => &[
                "diameter", "dea", "dra", "hss", "mme", "pcrf", "pcf", "ocs", "pgw", "smf", "ggsn",
            ],
            Core::Sigtran => &["sigtran", "stp", "msc", "hlr", "sgsn", "mme", "smsc", "vlr"],
            Core::Radius => &["radius", "aaa", "ggsn", "pgw", "smf", "nas"],
        }
    }

    /// The role an asset file gets for a speaker learnt from traffic.
    pub fn learnt_role(self) -> &'static str {
        match self {
            Core::GtpC | Core::GtpU => "gsn",
            Core::Diameter => "diameter",
            Core::Sigtran => "sigtran",
            Core::Radius => "radius",
        }
    }
}
