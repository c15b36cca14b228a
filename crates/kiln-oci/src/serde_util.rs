//! Small serde helpers shared by the JSON types.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Deserialises `null` (which Go writes for nil slices and maps) as the default value.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The `{}` value of Docker's set-like maps (`ExposedPorts`, `Volumes`).
///
/// Whatever object a producer put there is accepted; `{}` is written back, which is
/// what Docker, BuildKit and buildah write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EmptyObject;

impl Serialize for EmptyObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        serializer.serialize_map(Some(0))?.end()
    }
}

impl<'de> Deserialize<'de> for EmptyObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EmptyObject, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Ok(EmptyObject)
    }
}
