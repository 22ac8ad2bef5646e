//! `certs`: a CA and a serving certificate for the Service in front of the server, written as
//! files (made by [`crate::server::pki`]), with the commands that install them.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};

use super::{CertsArgs, check_name, print_stdout, shell_word};
use crate::server::pki::{self, CA_COMMON_NAME, Ca, Validity};
use crate::util::dns;

/// The files `certs` writes, in the order it writes them.
pub const FILES: [&str; 4] = ["ca.crt", "ca.key", "tls.crt", "tls.key"];

/// Runs `certs`: generates the certificates and writes them to `--out`.
///
/// # Errors
/// Invalid names, files already present (without `--force`), an unwritable directory.
pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    check_name("--namespace", &args.namespace, dns::label)?;
    check_name("--service-name", &args.service_name, dns::label_1035)?;
    let (ns, svc) = (&args.namespace, &args.service_name);
    let validity = Validity::days_from(SystemTime::now(), args.days)?;
    let ca = Ca::new(CA_COMMON_NAME, validity)?;
    let names = pki::serving_names(ns, svc);
    let leaf = ca.issue_server(&pki::service_host(ns, svc), &names, validity)?;
    let dir = &args.out;
    write_files(
        dir,
        &[
            (FILES[0], &ca.issued().cert_pem, 0o644),
            (FILES[1], &ca.issued().key_pem, 0o600),
            (FILES[2], &leaf.cert_pem, 0o644),
            (FILES[3], &leaf.key_pem, 0o600),
        ],
        args.force,
    )?;

    let file = |name: &str| shell_word(&dir.join(name).display().to_string());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "wrote {}  CA certificate: the APIService caBundle (`manifests --ca-file`)",
        file("ca.crt")
    );
    let _ = writeln!(
        out,
        "wrote {}  CA private key: keep it out of the cluster; no command here needs it again",
        file("ca.key")
    );
    let _ = writeln!(
        out,
        "wrote {}  serving certificate for {}",
        file("tls.crt"),
        names.join(", ")
    );
    let _ = writeln!(out, "wrote {}  serving private key", file("tls.key"));
    let _ = writeln!(
        out,
        "both expire {} ({} days); run `certs --force` again before then and re-apply the manifests",
        utc(validity.not_after),
        args.days
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Store the serving certificate where the MiniCluster mounts it:"
    );
    let _ = writeln!(
        out,
        "  kubectl create secret tls {svc}-tls --namespace {ns} --cert {} --key {}",
        file("tls.crt"),
        file("tls.key")
    );
    let _ = writeln!(out, "Register the server, verified by this CA:");
    let _ = writeln!(
        out,
        "  flux-metrics-api manifests --namespace {ns} --service-name {svc} --ca-file {} | kubectl apply -f -",
        file("ca.crt")
    );
    print_stdout(&out)
}

/// A time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    chrono::DateTime::from_timestamp(secs, 0).map_or_else(
        || format!("{secs} s after 1970"),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// Writes `files` (name, content, mode) into `dir`, creating it; each file is written to a
/// temporary name and renamed, so a reader never sees half a key. Refuses to replace any
/// existing file unless `force`, before writing anything.
fn write_files(dir: &Path, files: &[(&str, &str, u32)], force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--out {}: cannot create the directory", dir.display()))?;
    if !force {
        let present: Vec<&str> = files
            .iter()
            .map(|(name, ..)| *name)
            .filter(|name| dir.join(name).symlink_metadata().is_ok())
            .collect();
        if !present.is_empty() {
            bail!(
                "--out {} already holds {}: pass --force to replace them (a new CA no longer \
                 matches the caBundle of APIServices made from the old one, so re-apply the \
                 manifests too)",
                dir.display(),
                present.join(", ")
            );
        }
    }
    for (name, content, mode) in files {
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| -> std::io::Result<()> {
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(*mode)
                .open(&tmp)?;
            f.write_all(content.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e).with_context(|| format!("writing {}", path.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiry_is_printed_in_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 10 * 86_400);
        assert_eq!(utc(t), "2027-01-25 08:00:00 UTC");
    }
}
