//! Prompt templates: embedded in the binary, overridable by `<workdir>/prompts/<name>.md`, with
//! `{{placeholder}}` substitution.
//!
//! Substitution is one pass: a value containing `{{x}}` (an agent's earlier hypothesis, say) is
//! inserted as is, never expanded. A `{{name}}` the template does not know is an error in an
//! override file (naming the file, the line and the known placeholders); text like `{{ }}` or
//! `{{Foo-1}}` that is not a placeholder name is kept literally.

use std::path::{Path, PathBuf};

/// Largest accepted override file.
pub const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// A prompt template's name (its override file is `<workdir>/prompts/<name>.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateName {
    /// `plan.md`
    Plan,
    /// `apply.md`
    Apply,
    /// `analyze.md`
    Analyze,
}

impl TemplateName {
    /// All templates.
    pub const ALL: [TemplateName; 3] = [
        TemplateName::Plan,
        TemplateName::Apply,
        TemplateName::Analyze,
    ];

    /// `plan`, `apply` or `analyze`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateName::Plan => "plan",
            TemplateName::Apply => "apply",
            TemplateName::Analyze => "analyze",
        }
    }

    /// The embedded text.
    pub fn builtin(self) -> &'static str {
        match self {
            TemplateName::Plan => include_str!("templates/plan.md"),
            TemplateName::Apply => include_str!("templates/apply.md"),
            TemplateName::Analyze => include_str!("templates/analyze.md"),
        }
    }

    /// The placeholders this template may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            TemplateName::Plan => &[
                "metric",
                "direction",
                "min_improvement",
                "search_space",
                "budget",
                "planned_from",
                "history",
                "best_path",
                "findings",
                "in_flight",
                "protected",
                "slots",
            ],
            TemplateName::Apply => &[
                "node_id",
                "name",
                "hypothesis",
                "params",
                "changes",
                "protected",
                "parent",
            ],
            TemplateName::Analyze => &[
                "metric",
                "direction",
                "node_id",
                "parent",
                "hypothesis",
                "changes",
                "params",
                "outcome",
                "metrics",
                "reference",
                "stdout_tail",
                "stderr_tail",
            ],
        }
    }
}

/// A template error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// An override file uses a placeholder the template does not know.
    #[error(
        "{}: unknown placeholder {{{{{name}}}}} at line {line}; this template knows: {}",
        path.display(),
        known.join(", ")
    )]
    UnknownPlaceholder {
        /// The override file.
        path: PathBuf,
        /// The placeholder.
        name: String,
        /// 1-based line.
        line: usize,
        /// Known placeholders.
        known: Vec<String>,
    },
    /// An override file cannot be used.
    #[error("{}: {message}", path.display())]
    Unreadable {
        /// The override file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// One loaded template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Which one.
    pub name: TemplateName,
    /// Its text.
    pub text: String,
    /// The override file it came from (`None`: embedded).
    pub origin: Option<PathBuf>,
}

/// The three templates of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    /// `plan`
    pub plan: Template,
    /// `apply`
    pub apply: Template,
    /// `analyze`
    pub analyze: Template,
}

impl Templates {
    /// The embedded templates.
    pub fn builtin() -> Self {
        let t = |name: TemplateName| Template {
            name,
            text: name.builtin().to_string(),
            origin: None,
        };
        Templates {
            plan: t(TemplateName::Plan),
            apply: t(TemplateName::Apply),
            analyze: t(TemplateName::Analyze),
        }
    }

    /// The templates of `workdir`: `prompts/<name>.md` where present, else embedded. Every
    /// override is checked for unknown placeholders now, so a typo fails at start-up.
    pub fn load(workdir: &Path) -> Result<Self, TemplateError> {
        let load = |name: TemplateName| -> Result<Template, TemplateError> {
            let path = workdir
                .join("prompts")
                .join(format!("{}.md", name.as_str()));
            let unreadable = |message: String| TemplateError::Unreadable {
                path: path.clone(),
                message,
            };
            autoresearch_engine::nofollow::check_under(workdir, &path)
                .map_err(|e| unreadable(e.to_string()))?;
            let bytes = match autoresearch_engine::nofollow::read_regular(&path, MAX_TEMPLATE_BYTES)
            {
                Ok(Some(b)) => b,
                Ok(None) => {
                    return Ok(Template {
                        name,
                        text: name.builtin().to_string(),
                        origin: None,
                    });
                }
                Err(e) => return Err(unreadable(e.to_string())),
            };
            let text = String::from_utf8(bytes)
                .map_err(|e| unreadable(format!("cannot read it as UTF-8 text: {e}")))?;
            let t = Template {
                name,
                text,
                origin: Some(path.clone()),
            };
            t.check()?;
            Ok(t)
        };
        Ok(Templates {
            plan: load(TemplateName::Plan)?,
            apply: load(TemplateName::Apply)?,
            analyze: load(TemplateName::Analyze)?,
        })
    }
}

/// A `{{name}}` occurrence: byte range and name.
fn placeholders(text: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("{{") {
        let start = from + i;
        let Some(j) = text[start + 2..].find("}}") else {
            break;
        };
        let inner = &text[start + 2..start + 2 + j];
        let name = inner.trim();
        if !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
        {
            let end = start + 2 + j + 2;
            out.push((start, end, name));
            from = end;
        } else {
            from = start + 2;
        }
    }
    out
}

impl Template {
    /// Checks that every placeholder is known.
    pub fn check(&self) -> Result<(), TemplateError> {
        let known = self.name.placeholders();
        for (start, _, name) in placeholders(&self.text) {
            if !known.contains(&name) {
                return Err(TemplateError::UnknownPlaceholder {
                    path: self.origin.clone().unwrap_or_else(|| {
                        PathBuf::from(format!("(embedded {}.md)", self.name.as_str()))
                    }),
                    name: name.to_string(),
                    line: self.text[..start].matches('\n').count() + 1,
                    known: known.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        Ok(())
    }

    /// Substitutes `values` (name → text) in one pass; a known placeholder without a value
    /// becomes empty.
    pub fn render(&self, values: &[(&str, &str)]) -> Result<String, TemplateError> {
        self.check()?;
        let mut out = String::with_capacity(
            self.text.len() + values.iter().map(|v| v.1.len()).sum::<usize>(),
        );
        let mut last = 0;
        for (start, end, name) in placeholders(&self.text) {
            out.push_str(&self.text[last..start]);
            if let Some((_, v)) = values.iter().find(|(k, _)| *k == name) {
                out.push_str(v);
            }
            last = end;
        }
        out.push_str(&self.text[last..]);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_use_only_known_placeholders() {
        for name in TemplateName::ALL {
            let t = Template {
                name,
                text: name.builtin().to_string(),
                origin: None,
            };
            t.check().unwrap();
        }
    }

    #[test]
    fn substitution_is_one_pass_and_keeps_non_placeholders() {
        let t = Template {
            name: TemplateName::Apply,
            text: "do {{ changes }} for {{node_id}}; keep {{ }} and {{Not-One}}".into(),
            origin: None,
        };
        let s = t
            .render(&[("changes", "{{node_id}}"), ("node_id", "007_x")])
            .unwrap();
        assert_eq!(s, "do {{node_id}} for 007_x; keep {{ }} and {{Not-One}}");
    }

    #[test]
    fn overrides_are_loaded_and_unknown_placeholders_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("prompts")).unwrap();
        std::fs::write(tmp.path().join("prompts/apply.md"), "Change: {{changes}}").unwrap();
        let t = Templates::load(tmp.path()).unwrap();
        assert_eq!(t.apply.text, "Change: {{changes}}");
        assert!(t.plan.origin.is_none());
        std::fs::write(tmp.path().join("prompts/plan.md"), "a\n{{histroy}}").unwrap();
        let e = Templates::load(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("prompts/plan.md: unknown placeholder {{histroy}} at line 2"),
            "{e}"
        );
        assert!(e.contains("history"), "{e}");
    }
}
