//! Whose uploads are forwarded and which messages are acted on: `UPLOADER_CHECK`,
//! `SOURCE_BUCKET`, `SOURCE_ACCOUNT` (see [`crate::trust`]).

use super::read::{SettingError, Vars, parsed, text};
use crate::trust::{TrustSettings, UploaderCheck};

/// Reads the three settings; each unset is the default (`instance`, any bucket, any account).
pub fn read_trust<F: Fn(&str) -> Option<String>>(
    vars: &Vars<F>,
) -> Result<TrustSettings, SettingError> {
    let uploaders = parsed(vars.get("UPLOADER_CHECK"), UploaderCheck::parse)?.unwrap_or_default();
    let buckets = text(vars.get("SOURCE_BUCKET"))
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let account = parsed(vars.get("SOURCE_ACCOUNT"), |a| {
        if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) {
            Ok(a.to_string())
        } else {
            Err("an AWS account ID is 12 digits")
        }
    })?;
    Ok(TrustSettings {
        uploaders,
        buckets,
        account,
    })
}
