//! Who a request is served for, from its connection's client certificate ([`Peer`], judged by
//! `server::trust`) and, for kube-apiserver's front proxy, its `X-Remote-User`/`X-Remote-Group`
//! headers; and the refusals (401/403 `Status`) for everyone else.

use axum::http::HeaderMap;

use crate::api::error::ApiError;

/// Headers of the front-proxy protocol.
const REMOTE_USER: &str = "x-remote-user";
const REMOTE_GROUP: &str = "x-remote-group";
const REMOTE_PREFIX: &str = "x-remote-";

/// What a connection's client certificate says, judged once per connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Authentication is not configured: everyone is let in.
    Open,
    /// No certificate was presented.
    NoCertificate,
    /// kube-apiserver's front proxy (requestheader CA, allowed CN).
    FrontProxy {
        /// The certificate's CN.
        cn: String,
    },
    /// A client certificate of the client CA.
    Client {
        /// CN: the user.
        cn: String,
        /// O values: the groups.
        groups: Vec<String>,
    },
    /// Signed by the requestheader CA, but its CN is not in `--requestheader-allowed-names`.
    NotAllowed {
        /// The certificate's CN.
        cn: String,
    },
    /// Not signed by a configured CA, expired, or not for client authentication.
    Untrusted {
        /// The certificate's CN.
        cn: String,
        /// Why it was refused.
        reason: String,
    },
}

/// The user a request is served for, for the access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// User name (`-` when authentication is off).
    pub user: String,
    /// Groups.
    pub groups: Vec<String>,
}

/// Decides whether a request of `peer` may proceed, and as whom.
///
/// # Errors
/// 401 without an acceptable certificate (or a front-proxy request naming no user), 403 for a
/// front-proxy certificate whose CN is not allowed.
pub fn authenticate(peer: &Peer, headers: &HeaderMap) -> Result<Identity, ApiError> {
    match peer {
        Peer::Open => Ok(Identity { user: "-".into(), groups: Vec::new() }),
        Peer::NoCertificate => Err(ApiError::Unauthorized(
            "a client certificate signed by a CA this server trusts is required (--requestheader-client-ca-file, --client-ca-file or --authentication-from-cluster)".into(),
        )),
        Peer::Untrusted { cn, reason } => Err(ApiError::Unauthorized(format!(
            "client certificate CN={cn:?} is not accepted: {reason}"
        ))),
        Peer::NotAllowed { cn } => Err(ApiError::Forbidden(format!(
            "client certificate CN={cn:?} is signed by the requestheader CA but is not in --requestheader-allowed-names"
        ))),
        Peer::Client { cn, groups } => Ok(Identity { user: cn.clone(), groups: groups.clone() }),
        Peer::FrontProxy { .. } => {
            let user = headers
                .get_all(REMOTE_USER)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| !v.is_empty())
                .ok_or_else(|| {
                    ApiError::Unauthorized("front-proxy request without an X-Remote-User header".into())
                })?;
            let groups = headers
                .get_all(REMOTE_GROUP)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
                .collect();
            Ok(Identity { user: user.to_owned(), groups })
        }
    }
}

/// Removes `X-Remote-*` headers, which only the front proxy may set.
pub fn strip_remote_headers(headers: &mut HeaderMap) {
    let names: Vec<_> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(REMOTE_PREFIX))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_proxy_identity_comes_from_headers() {
        let mut h = HeaderMap::new();
        h.append("X-Remote-User", "system:kube-aggregator".parse().unwrap());
        h.append("X-Remote-Group", "system:masters".parse().unwrap());
        h.append("X-Remote-Group", "system:authenticated".parse().unwrap());
        let id = authenticate(
            &Peer::FrontProxy {
                cn: "front-proxy-client".into(),
            },
            &h,
        )
        .unwrap();
        assert_eq!(id.user, "system:kube-aggregator");
        assert_eq!(id.groups, ["system:masters", "system:authenticated"]);
        let e = authenticate(&Peer::FrontProxy { cn: "f".into() }, &HeaderMap::new()).unwrap_err();
        assert!(matches!(e, ApiError::Unauthorized(_)));
    }

    #[test]
    fn refusals_are_401_and_403() {
        let h = HeaderMap::new();
        assert!(matches!(
            authenticate(&Peer::NoCertificate, &h),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            authenticate(&Peer::NotAllowed { cn: "x".into() }, &h),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            authenticate(
                &Peer::Untrusted {
                    cn: "x".into(),
                    reason: "r".into()
                },
                &h
            ),
            Err(ApiError::Unauthorized(_))
        ));
        assert_eq!(authenticate(&Peer::Open, &h).unwrap().user, "-");
    }

    #[test]
    fn remote_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.append("X-Remote-User", "admin".parse().unwrap());
        h.append("X-Remote-Extra-Scopes", "x".parse().unwrap());
        h.append("Accept", "*/*".parse().unwrap());
        strip_remote_headers(&mut h);
        assert_eq!(h.len(), 1);
    }
}
