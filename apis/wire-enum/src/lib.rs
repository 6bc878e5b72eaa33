//! String enums for the Triton APIs' wire formats (VM states, job
//! executions, service types, ...). Triton adds values over time, and a
//! client that refused a whole VM list because one VM is in a state this
//! contract does not name would be worse than useless, so every such enum
//! has an `Other(String)` variant that keeps the value as sent.
//!
//! Also: lenient deserializers for fields whose shape varies between
//! releases of the real services, and the resource-count headers their
//! list endpoints send.

#[doc(hidden)]
pub use schemars;
#[doc(hidden)]
pub use serde;

use schemars::schema::{InstanceType, Metadata, Schema, SchemaObject};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Defines a string enum whose known variants map to wire names, plus
/// `Other(String)` for any other value. Serializes as the plain string;
/// its JSON schema is a string (not a closed `enum`), so generated clients
/// accept new values too.
///
/// ```
/// wire_enum::wire_enum! {
///     /// A VM's `state`.
///     pub enum State {
///         Running = "running",
///         Stopped = "stopped",
///     }
/// }
/// let s: State = serde_json::from_str("\"migrating\"").unwrap();
/// assert_eq!(s, State::Other("migrating".into()));
/// assert_eq!(State::from("running"), State::Running);
/// ```
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
            /// A value this contract does not name, kept as sent.
            Other(String),
        }

        impl $name {
            /// The wire names of the known variants.
            pub const KNOWN: &'static [&'static str] = &[$($wire),+];

            /// The wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $( Self::$variant => $wire, )+
                    Self::Other(s) => s.as_str(),
                }
            }
        }

        impl ::std::convert::From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $( $wire => Self::$variant, )+
                    other => Self::Other(other.to_string()),
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::convert::Infallible;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Ok(Self::from(s))
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::serde::Serialize for $name {
            fn serialize<S: $crate::serde::Serializer>(
                &self,
                serializer: S,
            ) -> ::std::result::Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> $crate::serde::Deserialize<'de> for $name {
            fn deserialize<D: $crate::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as $crate::serde::Deserialize>::deserialize(
                    deserializer,
                )?;
                Ok(Self::from(s.as_ref()))
            }
        }

        impl $crate::schemars::JsonSchema for $name {
            fn schema_name() -> String {
                stringify!($name).to_string()
            }

            fn json_schema(
                _: &mut $crate::schemars::SchemaGenerator,
            ) -> $crate::schemars::schema::Schema {
                $crate::open_string_schema(Self::KNOWN)
            }
        }
    };
}

/// The schema of a [`wire_enum!`] type: a string, with the known values in
/// its description.
#[doc(hidden)]
pub fn open_string_schema(known: &[&str]) -> Schema {
    Schema::Object(SchemaObject {
        instance_type: Some(InstanceType::String.into()),
        metadata: Some(Box::new(Metadata {
            description: Some(format!(
                "One of {}; other values are accepted and kept as sent.",
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ..Default::default()
        })),
        ..Default::default()
    })
}

/// For object-valued fields that older records hold as an empty array (SAPI
/// `manifests: []`, as its own documentation shows): `[]` and `null` read as
/// an empty object; anything else that is not an object is an error.
pub fn object_or_empty_array<'de, D>(
    deserializer: D,
) -> Result<Option<Map<String, Value>>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(Value::Array(a)) if a.is_empty() => Ok(Some(Map::new())),
        Some(other) => Err(serde::de::Error::custom(format!(
            "expected an object, found {other}"
        ))),
    }
}

/// A count header of a list answer (VMAPI's `x-joyent-resource-count`,
/// PAPI's `x-resource-count`): `None` when absent or not a number.
pub fn count_header(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `serialize_with`/`deserialize_with` (`wire_enum::count_as_string::…`) for a `u64` count sent
/// as a response header: Dropshot writes header structs only from
/// strings, and the count is still typed (and documented) as an integer.
pub mod count_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(count: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(count)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Count {
            Number(u64),
            Text(String),
        }
        match Count::deserialize(deserializer)? {
            Count::Number(n) => Ok(n),
            Count::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("expected a count, found {t:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use serde_json::json;

    wire_enum! {
        /// Test enum.
        pub enum Execution {
            Queued = "queued",
            Succeeded = "succeeded",
        }
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "super::object_or_empty_array")]
        m: Option<serde_json::Map<String, serde_json::Value>>,
    }

    #[test]
    fn known_and_unknown_values_round_trip() {
        for (text, value) in [
            ("\"queued\"", Execution::Queued),
            ("\"succeeded\"", Execution::Succeeded),
            ("\"paused\"", Execution::Other("paused".into())),
        ] {
            let parsed: Execution = serde_json::from_str(text).unwrap();
            assert_eq!(parsed, value);
            assert_eq!(serde_json::to_string(&parsed).unwrap(), text);
        }
        assert_eq!(Execution::Queued.to_string(), "queued");
        assert_eq!(
            "succeeded".parse::<Execution>().unwrap(),
            Execution::Succeeded
        );
    }

    #[test]
    fn schema_is_an_open_string() {
        let schema = schemars::schema_for!(Execution);
        let v = serde_json::to_value(&schema).unwrap();
        assert_eq!(v["type"], "string");
        assert!(v.get("enum").is_none(), "{v}");
        assert!(v["description"].as_str().unwrap().contains("`queued`"));
    }

    #[test]
    fn count_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("x-resource-count", " 42".parse().unwrap());
        h.insert("x-joyent-resource-count", "many".parse().unwrap());
        assert_eq!(super::count_header(&h, "x-resource-count"), Some(42));
        assert_eq!(super::count_header(&h, "x-joyent-resource-count"), None);
        assert_eq!(super::count_header(&h, "x-other"), None);
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct CountHeader {
        #[serde(with = "super::count_as_string")]
        n: u64,
    }

    #[test]
    fn counts_are_written_as_strings_and_read_from_either() {
        assert_eq!(
            serde_json::to_value(CountHeader { n: 7 }).unwrap(),
            json!({"n": "7"})
        );
        for v in [json!({"n": "7"}), json!({"n": 7})] {
            assert_eq!(
                serde_json::from_value::<CountHeader>(v).unwrap(),
                CountHeader { n: 7 }
            );
        }
        assert!(serde_json::from_value::<CountHeader>(json!({"n": "x"})).is_err());
    }

    #[test]
    fn empty_array_reads_as_empty_object() {
        let h: Holder = serde_json::from_value(json!({"m": []})).unwrap();
        assert_eq!(h.m, Some(serde_json::Map::new()));
        let h: Holder = serde_json::from_value(json!({"m": {"a": "b"}})).unwrap();
        assert_eq!(h.m.unwrap()["a"], "b");
        let h: Holder = serde_json::from_value(json!({})).unwrap();
        assert!(h.m.is_none());
        let err = serde_json::from_value::<Holder>(json!({"m": [1]})).unwrap_err();
        assert!(err.to_string().contains("expected an object"), "{err}");
    }
}
