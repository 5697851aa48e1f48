//! Templates: minijinja templates with three blocks. `takes` names the entity set the template
//! renders (`issues`, `commits` or `symbols`); `prompt` and `completion` are rendered from an
//! example's context (see `examples.rs` for what each context holds). The built-in ones live in
//! `templates/*.j2`; a user template is a file with the same three blocks.

use std::path::Path;

use minijinja::Environment;

use super::ExportError;

/// What a template renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Takes {
    Issues,
    Commits,
    Symbols,
}

impl Takes {
    pub fn name(self) -> &'static str {
        match self {
            Takes::Issues => "issues",
            Takes::Commits => "commits",
            Takes::Symbols => "symbols",
        }
    }
}

/// The built-in templates: name and source.
pub const BUILT_IN: [(&str, &str); 6] = [
    ("issue_fix", include_str!("templates/issue_fix.j2")),
    ("issue_answer", include_str!("templates/issue_answer.j2")),
    (
        "commit_message",
        include_str!("templates/commit_message.j2"),
    ),
    (
        "classify_issue",
        include_str!("templates/classify_issue.j2"),
    ),
    ("code_qa", include_str!("templates/code_qa.j2")),
    ("duplicate", include_str!("templates/duplicate.j2")),
];

/// How examples are built for a template: the built-ins each have their own context; a user
/// template gets the richest context of the set it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Builder {
    IssueFix,
    IssueAnswer,
    CommitMessage,
    ClassifyIssue,
    CodeQa,
    /// Pairs of issues: duplicates, and hard negatives (needs the vector index).
    Duplicate,
}

/// A loaded template.
#[derive(Clone)]
pub struct Template {
    pub name: String,
    pub takes: Takes,
    pub builder: Builder,
    env: Environment<'static>,
}

/// A rendered example's two halves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub prompt: String,
    pub completion: String,
}

impl Template {
    /// A built-in template by name.
    pub fn built_in(name: &str) -> Result<Template, ExportError> {
        let (name, source) = BUILT_IN.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            ExportError::UnknownTemplate {
                name: name.to_string(),
                known: BUILT_IN
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })?;
        Template::from_source(name, source.to_string(), None)
    }

    /// A user template from a file; examples are built as for the built-in template of the
    /// same set (`issue_fix` for issues, `commit_message` for commits, `code_qa` for symbols).
    pub fn from_file(path: &Path) -> Result<Template, ExportError> {
        let source = std::fs::read_to_string(path).map_err(|e| ExportError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = path
            .file_stem()
            .map_or("template".into(), |s| s.to_string_lossy().into_owned());
        Template::from_source(&name, source, Some(path))
    }

    fn from_source(
        name: &str,
        source: String,
        file: Option<&Path>,
    ) -> Result<Template, ExportError> {
        let shown = file.map_or(name.to_string(), |p| p.display().to_string());
        let bad = |e: minijinja::Error| ExportError::Template {
            name: shown.clone(),
            source: Box::new(e),
        };
        let mut env = Environment::new();
        env.set_keep_trailing_newline(false);
        env.add_template_owned(name.to_string(), source)
            .map_err(bad)?;
        let tmpl = env.get_template(name).map_err(bad)?;
        let takes_text = render_blocks(&tmpl, &serde_json::Value::Null, &["takes"])
            .map(|mut b| b.remove(0))
            .map_err(|e| ExportError::TemplateBlocks {
                name: shown.clone(),
                detail: format!("a `takes` block naming issues, commits or symbols: {e}"),
            })?;
        let takes = match takes_text.trim() {
            "issues" => Takes::Issues,
            "commits" => Takes::Commits,
            "symbols" => Takes::Symbols,
            other => {
                return Err(ExportError::TemplateBlocks {
                    name: shown,
                    detail: format!("`takes` says `{other}`; expected issues, commits or symbols"),
                })
            }
        };
        let builder = match (name, takes) {
            ("issue_answer", Takes::Issues) => Builder::IssueAnswer,
            ("classify_issue", Takes::Issues) => Builder::ClassifyIssue,
            ("duplicate", Takes::Issues) => Builder::Duplicate,
            (_, Takes::Issues) => Builder::IssueFix,
            (_, Takes::Commits) => Builder::CommitMessage,
            (_, Takes::Symbols) => Builder::CodeQa,
        };
        let template = Template {
            name: name.to_string(),
            takes,
            builder,
            env,
        };
        for block in ["prompt", "completion"] {
            let t = template.env.get_template(&template.name).map_err(bad)?;
            if !t.source().contains(&format!("block {block}")) {
                return Err(ExportError::TemplateBlocks {
                    name: shown,
                    detail: format!("a `{block}` block"),
                });
            }
        }
        Ok(template)
    }

    /// Render both halves from `context`.
    pub fn render(&self, context: &serde_json::Value) -> Result<Rendered, ExportError> {
        let bad = |e: minijinja::Error| ExportError::Template {
            name: self.name.clone(),
            source: Box::new(e),
        };
        let tmpl = self.env.get_template(&self.name).map_err(bad)?;
        let mut blocks = render_blocks(&tmpl, context, &["prompt", "completion"]).map_err(bad)?;
        let completion = blocks.pop().unwrap_or_default();
        let prompt = blocks.pop().unwrap_or_default();
        Ok(Rendered {
            prompt: prompt.trim().to_string(),
            completion: completion.trim().to_string(),
        })
    }
}

/// Render the named blocks of `tmpl` with one evaluation of its top level. minijinja renders a
/// single block only from the state `eval_to_state` gives (its successor, `render_captured`,
/// hands the state out read-only).
#[allow(deprecated)]
fn render_blocks(
    tmpl: &minijinja::Template<'_, '_>,
    context: &serde_json::Value,
    names: &[&str],
) -> Result<Vec<String>, minijinja::Error> {
    let mut state = tmpl.eval_to_state(context)?;
    names.iter().map(|n| state.render_block(n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_template_loads_and_names_its_set() {
        let takes: Vec<(String, Takes)> = BUILT_IN
            .iter()
            .map(|(n, _)| {
                let t = Template::built_in(n).unwrap();
                (t.name, t.takes)
            })
            .collect();
        assert_eq!(
            takes,
            vec![
                ("issue_fix".into(), Takes::Issues),
                ("issue_answer".into(), Takes::Issues),
                ("commit_message".into(), Takes::Commits),
                ("classify_issue".into(), Takes::Issues),
                ("code_qa".into(), Takes::Symbols),
                ("duplicate".into(), Takes::Issues),
            ]
        );
    }

    #[test]
    fn a_template_without_its_blocks_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mine.j2");
        std::fs::write(&path, "{% block prompt %}x{% endblock %}").unwrap();
        let err = Template::from_file(&path).err().unwrap().to_string();
        assert!(err.contains("takes"), "{err}");
        std::fs::write(
            &path,
            "{% block takes %}issues{% endblock %}{% block prompt %}{{ issue.title }}{% endblock %}",
        )
        .unwrap();
        let err = Template::from_file(&path).err().unwrap().to_string();
        assert!(err.contains("completion"), "{err}");
        assert!(Template::built_in("nope")
            .err()
            .unwrap()
            .to_string()
            .contains("issue_fix"));
    }
}
