//! The `log_format` an access object names ([`ncf_parse::object_format`]): its format object
//! read through the same [`ObjectSource`] as the log, checked and compiled once per warm
//! process, and kept by hash.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::config::{FormatSource, ObjectSettings};
use crate::event::ObjectRef;
use crate::ports::{ObjectSource, SourceError};
use crate::route::LogKind;
use ncf_parse::object_format::{
    self, MAX_FORMAT_OBJECT_BYTES, META_LOG_FORMAT, META_LOG_FORMATS, META_PARTS,
    ObjectFormatError, Part,
};
use ncf_parse::{FieldNames, LogFormat};

/// Compiled formats a warm process keeps (by content hash: an entry never goes stale). Hosts
/// rarely have more than a few formats each; past this the oldest entry is dropped (and read
/// again should it be named again).
pub const MAX_CACHED_FORMATS: usize = 64;

/// Why the format an object names cannot be used: the object fails (nothing is sent with a
/// wrong format).
#[derive(Debug, thiserror::Error)]
pub enum FormatObjectError {
    #[error(transparent)]
    Format(#[from] ObjectFormatError),
    #[error("the format object {key:?} that its metadata names does not exist")]
    Missing { key: String },
    #[error("cannot read the format object {key:?}: {source}")]
    Unreadable { key: String, source: SourceError },
}

/// The compiled formats of a warm process, by content hash, at most [`MAX_CACHED_FORMATS`].
/// Each hash has one cell: objects of one invocation that name the same format wait for one
/// read of it.
#[derive(Default)]
pub struct FormatCache {
    inner: Mutex<Cells>,
}

#[derive(Default)]
struct Cells {
    by_hash: HashMap<String, Arc<OnceCell<LogFormat>>>,
    /// Hashes, oldest first.
    order: VecDeque<String>,
}

impl FormatCache {
    /// The cell of `hash`, made (and the oldest dropped past the bound) when there is none.
    fn cell(&self, hash: &str) -> Arc<OnceCell<LogFormat>> {
        let mut cells = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = cells.by_hash.get(hash) {
            return cell.clone();
        }
        while cells.order.len() >= MAX_CACHED_FORMATS {
            if let Some(old) = cells.order.pop_front() {
                cells.by_hash.remove(&old);
            }
        }
        let cell = Arc::new(OnceCell::new());
        cells.by_hash.insert(hash.to_string(), cell.clone());
        cells.order.push_back(hash.to_string());
        cell
    }

    /// How many formats are compiled and kept.
    pub fn len(&self) -> usize {
        let cells = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        cells.by_hash.values().filter(|c| c.initialized()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The metadata [`FormatLookup::object_formats`] reads.
pub const METADATA: [&str; 3] = [META_LOG_FORMAT, META_LOG_FORMATS, META_PARTS];

/// The formats an access object names (its `ncf-log-format`, or its `ncf-log-formats` and
/// `ncf-parts` metadata), compiled.
#[derive(Debug, Clone)]
pub struct Named {
    /// The format objects' keys, in the metadata's order.
    pub keys: Vec<String>,
    pub formats: Vec<LogFormat>,
    /// Which formats each run of lines may be in; empty with one format (every line is in it).
    pub parts: Vec<Part>,
}

/// Where the formats objects name are read and kept, and the deployment's settings they are
/// read with.
pub struct FormatLookup<'a, S> {
    /// The log objects' own source: a format object is in the bucket of the log naming it.
    pub source: &'a S,
    pub cache: &'a FormatCache,
    /// `ACCESS_LOG_FORMAT_SOURCE`, and the `EXTRA_FIELDS` no variable of a format may be named.
    pub objects: &'a ObjectSettings,
    /// `FIELD_NAMES`: the keys a compiled format gives its variables.
    pub names: FieldNames,
}

impl<S: ObjectSource> FormatLookup<'_, S> {
    /// The formats `obj`'s access lines are parsed with when they are not `ACCESS_LOG_FORMAT`:
    /// the ones its metadata (`meta`) names, unless the deployment pins
    /// `ACCESS_LOG_FORMAT_SOURCE=config` or the object is not an access log.
    pub async fn object_formats<'m>(
        &self,
        obj: &ObjectRef,
        kind: LogKind,
        meta: impl Fn(&str) -> Option<&'m str>,
    ) -> Result<Option<Named>, FormatObjectError> {
        if self.objects.access_format_source == FormatSource::Config || kind != LogKind::Access {
            return Ok(None);
        }
        let (keys, parts) = match (meta(META_LOG_FORMATS), meta(META_LOG_FORMAT)) {
            (Some(list), _) => {
                let keys = object_format::decode_formats(list)?;
                let parts = match meta(META_PARTS) {
                    Some(value) => object_format::decode_parts(value, keys.len())?,
                    None => Vec::new(),
                };
                (keys, parts)
            }
            (None, Some(one)) => (vec![object_format::decode_meta(one)?], Vec::new()),
            (None, None) => return Ok(None),
        };
        let mut formats = Vec::with_capacity(keys.len());
        for key in &keys {
            formats.push(self.compiled(obj, key).await?);
        }
        Ok(Some(Named {
            keys,
            formats,
            parts,
        }))
    }

    /// The format object `key` (in `obj`'s bucket), read, checked and compiled once per
    /// process.
    async fn compiled(&self, obj: &ObjectRef, key: &str) -> Result<LogFormat, FormatObjectError> {
        let hash = object_format::hash_of_key(key)
            .ok_or_else(|| ObjectFormatError::NotAFormatKey(key.to_string()))?;
        let cell = self.cache.cell(hash);
        let format = cell
            .get_or_try_init(|| async {
                let format_obj = ObjectRef::new(obj.bucket.clone(), key.to_string());
                let body = match self
                    .source
                    .read_small(&format_obj, MAX_FORMAT_OBJECT_BYTES)
                    .await
                {
                    Ok(Some(body)) => body,
                    Ok(None) => return Err(ObjectFormatError::TooLarge { key: key.into() }.into()),
                    Err(SourceError::NotFound { .. }) => {
                        return Err(FormatObjectError::Missing { key: key.into() });
                    }
                    Err(source) => {
                        return Err(FormatObjectError::Unreadable {
                            key: key.into(),
                            source,
                        });
                    }
                };
                let extra = self.objects.extra_fields.names();
                Ok(object_format::compile(key, &body, self.names, &extra)?)
            })
            .await?;
        Ok(format.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_at_most_its_bound_dropping_the_oldest() {
        let cache = FormatCache::default();
        let hash = |i: usize| format!("{i:064x}");
        for i in 0..MAX_CACHED_FORMATS + 3 {
            let cell = cache.cell(&hash(i));
            cell.set(LogFormat::combined()).expect("a new cell");
        }
        assert_eq!(cache.len(), MAX_CACHED_FORMATS);
        // The three oldest were dropped: their cells are new (empty) ones.
        for i in 0..3 {
            assert!(!cache.cell(&hash(i)).initialized(), "{i}");
        }
        // Making those three dropped three more (the next oldest), and kept the newest.
        assert!(!cache.cell(&hash(3)).initialized());
        assert!(cache.cell(&hash(MAX_CACHED_FORMATS + 2)).initialized());
        // The same hash is the same cell.
        assert!(Arc::ptr_eq(&cache.cell(&hash(9)), &cache.cell(&hash(9))));
    }
}
