//! Reading an existing Teleport agent configuration (`/etc/teleport.yaml`) so it can drive
//! `iam-join whoami` (feature `teleport-config`).
//!
//! Only three things are read: `teleport.join_params.token_name`, `teleport.join_params.method`
//! (which must be `iam`) and the address to reach (`teleport.proxy_server`, else
//! `teleport.auth_server`, else `teleport.auth_servers[0]`). Every other section is ignored, so a
//! full agent config with `ssh_service`, `app_service`, ... loads as it is.

use std::path::Path;

use serde_norway::Value;

use crate::ClientError;

/// What an IAM-joining Teleport agent config says about joining.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeleportAgentConfig {
    /// `teleport.join_params.token_name`: the join token to match.
    pub token_name: String,
    /// The verifier base URL: `https://<address>` (an address with a scheme is kept as is).
    pub proxy_url: String,
    /// Which key the address came from, e.g. `teleport.proxy_server`.
    pub address_key: &'static str,
}

impl TeleportAgentConfig {
    /// Reads and interprets a Teleport config file.
    pub fn from_path(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|e| ClientError::TeleportConfig {
            path: Some(path.to_owned()),
            message: format!("cannot read it: {e}"),
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            ClientError::TeleportConfig {
                path: None,
                message,
            } => ClientError::TeleportConfig {
                path: Some(path.to_owned()),
                message,
            },
            other => other,
        })
    }

    /// Interprets the text of a Teleport config.
    ///
    /// ```
    /// # use iam_join_client::TeleportAgentConfig;
    /// let cfg = TeleportAgentConfig::from_yaml(
    ///     "teleport:\n  join_params: {token_name: iam-token, method: iam}\n  proxy_server: tele.example.com:443\n",
    /// ).unwrap();
    /// assert_eq!(cfg.token_name, "iam-token");
    /// assert_eq!(cfg.proxy_url, "https://tele.example.com:443");
    ///
    /// let err = TeleportAgentConfig::from_yaml(
    ///     "teleport:\n  join_params: {token_name: t, method: token}\n  proxy_server: p:443\n",
    /// ).unwrap_err();
    /// assert!(err.to_string().contains(r#"join_params.method is "token""#));
    /// ```
    pub fn from_yaml(text: &str) -> Result<Self, ClientError> {
        let fail = |message: String| ClientError::TeleportConfig {
            path: None,
            message,
        };
        let root: Value =
            serde_norway::from_str(text).map_err(|e| fail(format!("not valid YAML: {e}")))?;
        let teleport = root
            .get("teleport")
            .filter(|v| v.is_mapping())
            .ok_or_else(|| fail("has no `teleport:` section".to_owned()))?;
        let join = teleport
            .get("join_params")
            .filter(|v| v.is_mapping())
            .ok_or_else(|| {
                fail(
                    "has no teleport.join_params; an IAM-joining agent sets \
                     join_params: {token_name: <token>, method: iam}"
                        .to_owned(),
                )
            })?;
        match join.get("method") {
            Some(Value::String(m)) if m == "iam" => {}
            Some(Value::String(m)) => {
                return Err(fail(format!(
                    "join_params.method is {m:?}; iam-join only makes IAM join proofs (method: iam)"
                )));
            }
            Some(_) => {
                return Err(fail(
                    "join_params.method is not a string; iam-join only makes IAM join proofs (method: iam)"
                        .to_owned(),
                ));
            }
            None => {
                return Err(fail(
                    "join_params.method is not set (Teleport then uses \"token\"); iam-join only \
                     makes IAM join proofs (method: iam)"
                        .to_owned(),
                ));
            }
        }
        let token_name = match join.get("token_name") {
            Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => {
                return Err(fail(
                    "join_params.token_name is missing or empty; set it to the name of the IAM join token"
                        .to_owned(),
                ));
            }
        };
        let address = [
            ("teleport.proxy_server", teleport.get("proxy_server")),
            ("teleport.auth_server", teleport.get("auth_server")),
            (
                "teleport.auth_servers[0]",
                teleport.get("auth_servers").and_then(|s| s.get(0)),
            ),
        ]
        .into_iter()
        .find_map(|(key, value)| match value {
            Some(Value::String(s)) if !s.trim().is_empty() => Some((key, s.trim().to_owned())),
            _ => None,
        });
        let (address_key, address) = address.ok_or_else(|| {
            fail(
                "names no address: set teleport.proxy_server (or teleport.auth_server), or pass --proxy"
                    .to_owned(),
            )
        })?;
        let proxy_url = if address.contains("://") {
            address
        } else {
            format!("https://{address}")
        };
        Ok(Self {
            token_name,
            proxy_url,
            address_key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_server_is_used_when_there_is_no_proxy_server() {
        let cfg = TeleportAgentConfig::from_yaml(
            "teleport:\n  join_params: {token_name: t, method: iam}\n  auth_server: auth.example.com:3025\n",
        )
        .unwrap();
        assert_eq!(cfg.proxy_url, "https://auth.example.com:3025");
        assert_eq!(cfg.address_key, "teleport.auth_server");
    }

    #[test]
    fn the_first_of_auth_servers_is_used_last() {
        let cfg = TeleportAgentConfig::from_yaml(
            "teleport:\n  join_params: {token_name: t, method: iam}\n  auth_servers: [a.example.com:3025, b.example.com:3025]\n",
        )
        .unwrap();
        assert_eq!(cfg.proxy_url, "https://a.example.com:3025");
    }

    #[test]
    fn missing_pieces_get_clear_errors() {
        let cases = [
            ("ssh_service: {enabled: yes}\n", "no `teleport:` section"),
            (
                "teleport: {proxy_server: p:443}\n",
                "no teleport.join_params",
            ),
            (
                "teleport:\n  join_params: {token_name: t}\n  proxy_server: p:443\n",
                "method is not set",
            ),
            (
                "teleport:\n  join_params: {method: iam}\n  proxy_server: p:443\n",
                "token_name is missing",
            ),
            (
                "teleport:\n  join_params: {token_name: t, method: iam}\n",
                "names no address",
            ),
            ("teleport: [\n", "not valid YAML"),
        ];
        for (yaml, expected) in cases {
            let err = TeleportAgentConfig::from_yaml(yaml)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
    }
}
