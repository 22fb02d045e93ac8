//! Teleport system roles, the `spec.roles` of a join token.

use std::fmt;
use std::str::FromStr;

/// A Teleport system role granted by a join token (`spec.roles`).
///
/// Parsed case-insensitively (surrounding whitespace ignored, Teleport's legacy spellings
/// `trustedcluster`, `remote_proxy` and `windows_desktop` accepted) and normalised to the
/// canonical spelling that [`Role::as_str`] returns.
///
/// ```
/// use iam_join_core::policy::Role;
///
/// assert_eq!("node".parse::<Role>(), Ok(Role::Node));
/// assert_eq!(Role::TrustedCluster.as_str(), "Trusted_cluster");
/// assert!("Nodes".parse::<Role>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// `Auth`: the Teleport Auth Service.
    Auth,
    /// `Node`: an SSH node.
    Node,
    /// `Proxy`: the Teleport Proxy Service.
    Proxy,
    /// `Admin`: administrative access.
    Admin,
    /// `ProvisionToken`: a node authenticated with a provisioning token.
    ProvisionToken,
    /// `Trusted_cluster`: joining a trusted (leaf) cluster.
    TrustedCluster,
    /// `Signup`: first-time user sign-up.
    Signup,
    /// `Nop`: actions authorised by other means.
    Nop,
    /// `RemoteProxy`: the proxy of a remote cluster.
    RemoteProxy,
    /// `Kube`: the Kubernetes Service.
    Kube,
    /// `App`: the Application Service.
    App,
    /// `Db`: the Database Service.
    Db,
    /// `WindowsDesktop`: the Windows Desktop Service.
    WindowsDesktop,
    /// `Bot`: a Machine ID bot.
    Bot,
    /// `Instance`: the role every Teleport instance holds implicitly.
    Instance,
    /// `Discovery`: the Discovery Service.
    Discovery,
    /// `Okta`: the Okta Service.
    Okta,
    /// `MDM`: a device-management service.
    Mdm,
    /// `AccessGraphPlugin`: an Access Graph plugin.
    AccessGraphPlugin,
    /// `LinuxDesktop`: the Linux Desktop Service.
    LinuxDesktop,
}

/// Lower-case spelling → role. The canonical spellings first, then Teleport's legacy aliases.
const SPELLINGS: &[(&str, Role)] = &[
    ("auth", Role::Auth),
    ("node", Role::Node),
    ("proxy", Role::Proxy),
    ("admin", Role::Admin),
    ("provisiontoken", Role::ProvisionToken),
    ("trusted_cluster", Role::TrustedCluster),
    ("signup", Role::Signup),
    ("nop", Role::Nop),
    ("remoteproxy", Role::RemoteProxy),
    ("kube", Role::Kube),
    ("app", Role::App),
    ("db", Role::Db),
    ("windowsdesktop", Role::WindowsDesktop),
    ("bot", Role::Bot),
    ("instance", Role::Instance),
    ("discovery", Role::Discovery),
    ("okta", Role::Okta),
    ("mdm", Role::Mdm),
    ("accessgraphplugin", Role::AccessGraphPlugin),
    ("linuxdesktop", Role::LinuxDesktop),
    ("trustedcluster", Role::TrustedCluster),
    ("remote_proxy", Role::RemoteProxy),
    ("windows_desktop", Role::WindowsDesktop),
];

impl Role {
    /// Every role, in Teleport's order.
    pub const ALL: [Role; 20] = [
        Role::Auth,
        Role::Node,
        Role::Proxy,
        Role::Admin,
        Role::ProvisionToken,
        Role::TrustedCluster,
        Role::Signup,
        Role::Nop,
        Role::RemoteProxy,
        Role::Kube,
        Role::App,
        Role::Db,
        Role::WindowsDesktop,
        Role::Bot,
        Role::Instance,
        Role::Discovery,
        Role::Okta,
        Role::Mdm,
        Role::AccessGraphPlugin,
        Role::LinuxDesktop,
    ];

    /// The canonical (Teleport) spelling, e.g. `Node`, `Db`, `Trusted_cluster`, `MDM`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Auth => "Auth",
            Role::Node => "Node",
            Role::Proxy => "Proxy",
            Role::Admin => "Admin",
            Role::ProvisionToken => "ProvisionToken",
            Role::TrustedCluster => "Trusted_cluster",
            Role::Signup => "Signup",
            Role::Nop => "Nop",
            Role::RemoteProxy => "RemoteProxy",
            Role::Kube => "Kube",
            Role::App => "App",
            Role::Db => "Db",
            Role::WindowsDesktop => "WindowsDesktop",
            Role::Bot => "Bot",
            Role::Instance => "Instance",
            Role::Discovery => "Discovery",
            Role::Okta => "Okta",
            Role::Mdm => "MDM",
            Role::AccessGraphPlugin => "AccessGraphPlugin",
            Role::LinuxDesktop => "LinuxDesktop",
        }
    }
}

/// The text is not one of Teleport's system role names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{name}`; expected one of {}", RoleList)]
pub struct UnknownRole {
    name: String,
}

impl UnknownRole {
    /// The text that was not recognised.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Displays the canonical role names, comma-separated.
struct RoleList;

impl fmt::Display for RoleList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, role) in Role::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(role.as_str())?;
        }
        Ok(())
    }
}

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        SPELLINGS
            .iter()
            .find(|(spelling, _)| spelling.eq_ignore_ascii_case(wanted))
            .map(|&(_, role)| role)
            .ok_or_else(|| UnknownRole { name: s.to_owned() })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_canonical_spelling_round_trips() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.as_str().to_uppercase().parse::<Role>(), Ok(role));
        }
    }

    #[test]
    fn parsing_is_case_insensitive_and_normalises() {
        assert_eq!("node".parse::<Role>(), Ok(Role::Node));
        assert_eq!(" NODE ".parse::<Role>(), Ok(Role::Node));
        assert_eq!("mdm".parse::<Role>(), Ok(Role::Mdm));
        assert_eq!("trustedcluster".parse::<Role>(), Ok(Role::TrustedCluster));
        assert_eq!("windows_desktop".parse::<Role>(), Ok(Role::WindowsDesktop));
        assert_eq!(Role::Mdm.to_string(), "MDM");
    }

    #[test]
    fn unknown_role_is_named_in_the_error() {
        let err = "Nodes".parse::<Role>().unwrap_err();
        assert_eq!(err.name(), "Nodes");
        let msg = err.to_string();
        assert!(msg.contains("`Nodes`"), "{msg}");
        assert!(msg.contains("WindowsDesktop"), "{msg}");
        assert!("".parse::<Role>().is_err());
    }
}
