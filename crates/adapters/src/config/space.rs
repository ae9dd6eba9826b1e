//! The search space: parameters by name, in the order the file declares them.

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::params::Param;

/// The search space: parameters by name, in the order the file declares them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchSpace {
    params: Vec<(String, Param)>,
}

impl SearchSpace {
    /// A search space from `(name, param)` pairs, in order. Names are not checked here;
    /// [`Config::validate`](super::Config::validate) checks them.
    pub fn new(params: Vec<(String, Param)>) -> Self {
        SearchSpace { params }
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, p)| p)
    }

    /// Parameters in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Param)> + '_ {
        self.params.iter().map(|(n, p)| (n.as_str(), p))
    }

    /// Parameter names in declaration order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.params.iter().map(|(n, _)| n.as_str())
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

impl Serialize for SearchSpace {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.params.len()))?;
        for (name, param) in &self.params {
            map.serialize_entry(name, param)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for SearchSpace {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpaceVisitor;
        impl<'de> Visitor<'de> for SpaceVisitor {
            type Value = SearchSpace;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping parameter names to choices or ranges")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SearchSpace, A::Error> {
                let mut params: Vec<(String, Param)> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if params.iter().any(|(n, _)| *n == name) {
                        return Err(de::Error::custom(format!(
                            "parameter `{name}` is defined twice"
                        )));
                    }
                    let param = map.next_value::<Param>()?;
                    params.push((name, param));
                }
                Ok(SearchSpace { params })
            }
        }
        deserializer.deserialize_map(SpaceVisitor)
    }
}
