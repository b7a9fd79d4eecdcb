//! What the host says about itself on every object it uploads: S3 user metadata
//! (`x-amz-meta-<name>`) that the forwarder can read from the GetObject response.
//!
//! The names are a contract with `scripts/ship-nginx-logs.sh` (which attaches the same ones) and
//! with the forwarder (`{meta:hostname}` and the like):
//!
//! | name            | value                                                                  |
//! |-----------------|------------------------------------------------------------------------|
//! | `instance-id`   | the EC2 instance ID from IMDSv2                                        |
//! | `hostname`      | the instance's `Name` tag (IMDSv2 instance tags), else `hostname -f`   |
//! | `nginx-version` | from `nginx -v`, e.g. `1.22.1`; absent when it cannot tell             |
//!
//! Every value goes through [`meta_value`]: percent-encoded UTF-8, at most 256 bytes.

pub use ncf_core::route::is_instance_id;
use std::path::Path;
use std::process::Command;

use aws_sdk_s3::error::DisplayErrorContext;

pub const META_INSTANCE_ID: &str = "instance-id";
pub const META_HOSTNAME: &str = "hostname";
/// On segments whose `log_format` nginx's configuration names: the key of its format object
/// (see [`super::format_key`]); the name the forwarder reads.
pub use ncf_parse::object_format::META_LOG_FORMAT;
/// The same name the forwarder reads (one constant for both sides of the contract).
pub use ncf_parse::request_line::META_NGINX_VERSION;

/// The longest metadata value written, in bytes (after encoding).
pub const MAX_META_VALUE: usize = 256;

/// The IMDS path of the instance's `Name` tag (answers 404 when the instance does not allow
/// tags in metadata, or has no `Name` tag).
pub const NAME_TAG_PATH: &str = "/latest/meta-data/tags/instance/Name";

/// Where `nginx` is looked for when it is not on `PATH` (and `NGINX_BIN` is not set).
pub const FALLBACK_NGINX: &str = "/usr/sbin/nginx";

/// A metadata value that any HTTP header carries unchanged: every byte outside `!`..`~`
/// (control bytes, space, DEL, every byte of a non-ASCII character) and `%` itself become
/// `%XX` (upper-case hex), so that a percent-decode gives the UTF-8 text back. Cut to at most
/// [`MAX_META_VALUE`] bytes, never inside a character.
pub fn meta_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_META_VALUE));
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let mut piece = String::new();
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            if (0x21..=0x7e).contains(&b) && b != b'%' {
                piece.push(char::from(b));
            } else {
                piece.push_str(&format!("%{b:02X}"));
            }
        }
        if out.len() + piece.len() > MAX_META_VALUE {
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// Where the `hostname` value came from (for the start-up log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameSource {
    /// The instance's `Name` tag.
    Tag,
    /// The system's host name ([`system_hostname`]: `hostname -f`, else the kernel's).
    System,
}

/// What the follower attaches to every segment; read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostMeta {
    pub instance_id: String,
    pub hostname: Option<(String, NameSource)>,
    pub nginx_version: Option<String>,
}

impl HostMeta {
    /// The metadata entries, values encoded; absent ones left out.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![(META_INSTANCE_ID, meta_value(&self.instance_id))];
        if let Some((name, _)) = &self.hostname {
            out.push((META_HOSTNAME, meta_value(name)));
        }
        if let Some(v) = &self.nginx_version {
            out.push((META_NGINX_VERSION, meta_value(v)));
        }
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("IMDS_ENDPOINT={endpoint:?}: {detail}")]
    Endpoint { endpoint: String, detail: String },
    #[error("cannot read the instance ID from IMDSv2 at {endpoint}: {detail}")]
    InstanceId { endpoint: String, detail: String },
    #[error(
        "IMDS at {endpoint} returned {id:?}, which is not an EC2 instance ID (i- and 8 or 17 hex digits)"
    )]
    NotAnId { endpoint: String, id: String },
    #[error(
        "cannot learn this host's aws:userid from STS GetCallerIdentity (NGINX_LOG_KEY_LAYOUT=userid): {detail}; the host must reach STS (in a private subnet: an STS VPC endpoint or a NAT gateway)"
    )]
    CallerIdentity { detail: String },
}

/// The instance's `Name` tag as IMDS answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameTag {
    Found(String),
    /// 404: tags not allowed in metadata, or no `Name` tag (or an empty one).
    Absent,
    /// Any other failure, described.
    Failed(String),
}

/// Reads the instance ID (required) and the `Name` tag (optional) with one IMDSv2 session.
pub async fn read_imds(endpoint: &str) -> Result<(String, NameTag), HostError> {
    let client = aws_config::imds::Client::builder()
        .endpoint(endpoint)
        .map_err(|e| HostError::Endpoint {
            endpoint: endpoint.into(),
            detail: e.to_string(),
        })?
        .build();
    let id = client
        .get("/latest/meta-data/instance-id")
        .await
        .map_err(|e| HostError::InstanceId {
            endpoint: endpoint.into(),
            detail: DisplayErrorContext(&e).to_string(),
        })?;
    let id = id.as_ref().trim().to_string();
    if !is_instance_id(&id) {
        return Err(HostError::NotAnId {
            endpoint: endpoint.into(),
            id,
        });
    }
    let tag = match client.get(NAME_TAG_PATH).await {
        Ok(name) => match name.as_ref().trim() {
            "" => NameTag::Absent,
            name => NameTag::Found(name.to_string()),
        },
        Err(aws_config::imds::client::error::ImdsError::ErrorResponse(r))
            if r.response().status().as_u16() == 404 =>
        {
            NameTag::Absent
        }
        Err(e) => NameTag::Failed(DisplayErrorContext(&e).to_string()),
    };
    Ok((id, tag))
}

/// Who the credentials are, as STS GetCallerIdentity answers (the call needs no IAM
/// permission): the account, the ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`
/// for an instance profile) and the `aws:userid`.
/// <https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html>
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

impl CallerIdentity {
    /// The role of an assumed-role ARN (`…:assumed-role/<role>/<session>`), else `None`.
    pub fn role(&self) -> Option<&str> {
        let rest = self.arn.split_once(":assumed-role/")?.1;
        rest.split_once('/').map(|(role, _)| role)
    }
}

/// [`CallerIdentity`] with `client` (the follower's configuration: credentials, region,
/// `AWS_ENDPOINT_URL`); an answer without `UserId` is an error.
pub async fn caller_identity(client: &aws_sdk_sts::Client) -> Result<CallerIdentity, HostError> {
    let out = client
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| HostError::CallerIdentity {
            detail: DisplayErrorContext(&e).to_string(),
        })?;
    let user_id =
        out.user_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| HostError::CallerIdentity {
                detail: "the answer has no UserId".into(),
            })?;
    Ok(CallerIdentity {
        account: out.account.unwrap_or_default(),
        arn: out.arn.unwrap_or_default(),
        user_id,
    })
}

/// The caller's `aws:userid` ([`caller_identity`]) through the same configuration as the
/// uploads.
pub async fn caller_user_id(shared: &aws_config::SdkConfig) -> Result<String, HostError> {
    Ok(caller_identity(&aws_sdk_sts::Client::new(shared))
        .await?
        .user_id)
}

/// The host's name as the shell shipper reads it: `hostname -f` (the kernel's host name,
/// completed with a domain through the resolver: `/etc/hosts` or DNS), else the kernel's host
/// name itself (`/proc/sys/kernel/hostname`, what plain `hostname` prints). Run once, at start.
pub fn system_hostname() -> Option<String> {
    Command::new("hostname")
        .arg("-f")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|n| !n.is_empty())
        .or_else(kernel_hostname)
}

fn kernel_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The version in `nginx -v`'s output (`nginx version: nginx/1.22.1` gives `1.22.1`; another
/// build keeps its name: `nginx version: openresty/1.21.4.1` gives `openresty/1.21.4.1`).
pub fn parse_nginx_version(output: &str) -> Option<String> {
    let rest = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("nginx version:"))?
        .trim();
    let v = rest.strip_prefix("nginx/").unwrap_or(rest).trim();
    (!v.is_empty()).then(|| v.to_string())
}

/// `nginx -v` of `bin` (when given: `NGINX_BIN`), else of `nginx` on `PATH`, else of
/// [`FALLBACK_NGINX`]; `None` when none runs or the output has no version.
pub fn nginx_version(bin: Option<&str>, path_var: Option<&str>) -> Option<String> {
    let bin = nginx_binary(bin, path_var)?;
    let out = Command::new(&bin).arg("-v").output().ok()?;
    parse_nginx_version(&String::from_utf8_lossy(&out.stderr))
        .or_else(|| parse_nginx_version(&String::from_utf8_lossy(&out.stdout)))
}

/// The nginx to ask: `bin` (when given: `NGINX_BIN`), else `nginx` on `PATH`, else
/// [`FALLBACK_NGINX`] when it is there.
pub fn nginx_binary(bin: Option<&str>, path_var: Option<&str>) -> Option<String> {
    match bin.filter(|b| !b.is_empty()) {
        Some(b) => Some(b.to_string()),
        None => path_var.and_then(|p| on_path("nginx", p)).or_else(|| {
            Path::new(FALLBACK_NGINX)
                .is_file()
                .then(|| FALLBACK_NGINX.into())
        }),
    }
}

fn on_path(name: &str, path_var: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|p| p.display().to_string())
}

/// Everything the follower attaches, read once: the instance ID (an error without it), the
/// name (the `Name` tag, else the system's host name, with a warning when IMDS failed other
/// than with 404), and the nginx version.
pub async fn read(endpoint: &str, nginx_bin: Option<&str>) -> Result<HostMeta, HostError> {
    let (instance_id, tag) = read_imds(endpoint).await?;
    let hostname = match tag {
        NameTag::Found(name) => Some((name, NameSource::Tag)),
        NameTag::Absent => system_hostname().map(|n| (n, NameSource::System)),
        NameTag::Failed(why) => {
            tracing::warn!(
                "cannot read the Name tag from IMDS at {endpoint}{NAME_TAG_PATH} ({why}); using the system's host name"
            );
            system_hostname().map(|n| (n, NameSource::System))
        }
    };
    let path_var = std::env::var("PATH").ok();
    let nginx_version = nginx_version(nginx_bin, path_var.as_deref());
    Ok(HostMeta {
        instance_id,
        hostname,
        nginx_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(meta_value("web-01.example.com"), "web-01.example.com");
        assert_eq!(meta_value("a(b)_c:d/e"), "a(b)_c:d/e");
    }

    #[test]
    fn space_percent_control_and_non_ascii_are_encoded() {
        assert_eq!(meta_value("web 01"), "web%2001");
        assert_eq!(meta_value("100%"), "100%25");
        assert_eq!(meta_value("a\tb\r\nc\u{7f}"), "a%09b%0D%0Ac%7F");
        assert_eq!(meta_value("café"), "caf%C3%A9");
        assert_eq!(meta_value("ウェブ"), "%E3%82%A6%E3%82%A7%E3%83%96");
    }

    #[test]
    fn long_values_are_cut_at_256_bytes_between_characters() {
        assert_eq!(meta_value(&"a".repeat(300)), "a".repeat(256));
        // 'é' is 6 bytes encoded: 255 + 6 > 256, so it is left out whole.
        let v = meta_value(&format!("{}é", "a".repeat(255)));
        assert_eq!(v, "a".repeat(255));
        // 256 Name-tag characters of 3 UTF-8 bytes: 9 encoded bytes each, 28 fit.
        let v = meta_value(&"ウ".repeat(256));
        assert_eq!(v.len(), 252);
        assert_eq!(v, "%E3%82%A6".repeat(28));
        for n in 0..400 {
            let v = meta_value(&"é ".repeat(n));
            assert!(v.len() <= MAX_META_VALUE);
            assert!(v.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{v}");
        }
    }

    #[test]
    fn nginx_versions() {
        assert_eq!(
            parse_nginx_version("nginx version: nginx/1.22.1\n").as_deref(),
            Some("1.22.1")
        );
        assert_eq!(
            parse_nginx_version("nginx version: openresty/1.21.4.1\n").as_deref(),
            Some("openresty/1.21.4.1")
        );
        assert_eq!(
            parse_nginx_version("nginx version: nginx/1.18.0 (Ubuntu)\n").as_deref(),
            Some("1.18.0 (Ubuntu)")
        );
        assert_eq!(parse_nginx_version("bash: nginx: not found"), None);
        assert_eq!(parse_nginx_version("nginx version: "), None);
        assert_eq!(parse_nginx_version(""), None);
    }

    #[test]
    fn instance_ids() {
        assert!(is_instance_id("i-0123456789abcdef0"));
        assert!(is_instance_id("i-01234567"));
        assert!(!is_instance_id("i-0123456789ABCDEF0"));
        assert!(!is_instance_id("<html>"));
    }

    #[test]
    fn entries_leave_out_what_is_unknown_and_encode_the_rest() {
        let m = HostMeta {
            instance_id: "i-01234567".into(),
            hostname: Some(("web 1".into(), NameSource::Tag)),
            nginx_version: None,
        };
        assert_eq!(
            m.entries(),
            [
                ("instance-id", "i-01234567".to_string()),
                ("hostname", "web%201".to_string())
            ]
        );
    }
}
