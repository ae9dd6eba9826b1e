//! `workspace.protected`: globs of repository paths the agent may not change.
//!
//! A pattern matches the whole repository-relative path (`/`-separated); `*` and `?` stay within
//! one folder, `**` crosses folders, and a pattern also covers everything under a folder it
//! names (`bench` protects `bench/run.py`).

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

/// The compiled protected globs.
#[derive(Debug, Clone)]
pub struct ProtectedPaths {
    patterns: Vec<String>,
    set: GlobSet,
}

impl ProtectedPaths {
    /// Compiles `patterns` (checked by `WorkspaceConfig::validate`; the error names the glob).
    pub fn new(patterns: &[String]) -> Result<Self, globset::Error> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            let p = p.trim_end_matches('/');
            builder.add(glob(p)?);
            builder.add(glob(&format!("{p}/**"))?);
        }
        Ok(ProtectedPaths {
            patterns: patterns.to_vec(),
            set: builder.build()?,
        })
    }

    /// The patterns as configured.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `path` (repository-relative) is protected.
    pub fn is_protected(&self, path: &str) -> bool {
        self.set.is_match(path)
    }

    /// The protected paths among `paths`.
    pub fn violations<'a>(&self, paths: impl IntoIterator<Item = &'a String>) -> Vec<String> {
        paths
            .into_iter()
            .filter(|p| self.is_protected(p))
            .cloned()
            .collect()
    }
}

fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    GlobBuilder::new(pattern).literal_separator(true).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules() {
        let p = ProtectedPaths::new(&["bench".into(), "*.cfg".into(), "src/**/eval_*.py".into()])
            .unwrap();
        assert!(p.is_protected("bench"));
        assert!(p.is_protected("bench/run.py"));
        assert!(p.is_protected("top.cfg"));
        assert!(!p.is_protected("sub/top.cfg"), "* stays within a folder");
        assert!(p.is_protected("src/a/b/eval_x.py"));
        assert!(p.is_protected("src/eval_x.py"));
        assert!(!p.is_protected("benchmark.py"));
        assert!(!p.is_protected("src/main.py"));
    }
}
