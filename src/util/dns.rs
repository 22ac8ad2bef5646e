//! Kubernetes' name rules (apimachinery `validation.IsDNS1123Label`, `IsDNS1035Label`,
//! `IsDNS1123Subdomain`): what Namespaces, Services, ServiceAccounts and label-key prefixes may
//! be called, and so what this program accepts (and prints into YAML unquoted) for them.

/// Longest DNS-1123 or DNS-1035 label.
pub const LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain.
pub const SUBDOMAIN_MAX: usize = 253;

/// Why a name breaks a rule; its text is Kubernetes' own wording, to follow "it".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Longer than the rule allows.
    #[error("must be no more than {max} characters")]
    TooLong {
        /// The most characters allowed.
        max: usize,
    },
    /// A character, or a first or last character, the rule does not allow.
    #[error("{0}")]
    Invalid(&'static str),
}

fn label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A DNS-1123 label (Namespace names): 1 to 63 lower-case letters, digits and `-`, starting and
/// ending with a letter or digit.
///
/// # Errors
/// Which part of the rule it breaks.
pub fn label(s: &str) -> Result<(), NameError> {
    if s.len() > LABEL_MAX {
        return Err(NameError::TooLong { max: LABEL_MAX });
    }
    if !label_chars(s) {
        return Err(NameError::Invalid(
            "must consist of lower case alphanumeric characters or '-', and must start and end \
             with an alphanumeric character",
        ));
    }
    Ok(())
}

/// A DNS-1035 label (Service names): a DNS-1123 label that starts with a letter.
///
/// # Errors
/// Which part of the rule it breaks.
pub fn label_1035(s: &str) -> Result<(), NameError> {
    if s.len() > LABEL_MAX {
        return Err(NameError::TooLong { max: LABEL_MAX });
    }
    if !label_chars(s) || !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(NameError::Invalid(
            "must consist of lower case alphanumeric characters or '-', start with an alphabetic \
             character, and end with an alphanumeric character",
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain (ServiceAccount names, label-key prefixes): at most 253 characters of
/// dot-separated parts, each as a label's characters (without a length of its own).
///
/// # Errors
/// Which part of the rule it breaks.
pub fn subdomain(s: &str) -> Result<(), NameError> {
    if s.len() > SUBDOMAIN_MAX {
        return Err(NameError::TooLong { max: SUBDOMAIN_MAX });
    }
    if !s.split('.').all(label_chars) {
        return Err(NameError::Invalid(
            "must consist of lower case alphanumeric characters, '-' or '.', and must start and \
             end with an alphanumeric character",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["a", "flux-operator", "x9", "a-b-c", "9a"] {
            assert_eq!(label(ok), Ok(()), "{ok}");
        }
        for bad in ["", "A", "-a", "a-", "a.b", "a b", "a\nb", &"a".repeat(64)] {
            assert!(label(bad).is_err(), "{bad:?}");
        }
        assert!(label_1035("9a").is_err());
        assert_eq!(label_1035("svc-1"), Ok(()));
    }

    #[test]
    fn subdomains() {
        for ok in ["my.service-account", "a", "example.com", &"a".repeat(100)] {
            assert_eq!(subdomain(ok), Ok(()), "{ok}");
        }
        for bad in ["", ".a", "a..b", "A", "a:b", "a.", &"a".repeat(254)] {
            assert!(subdomain(bad).is_err(), "{bad:?}");
        }
    }
}
