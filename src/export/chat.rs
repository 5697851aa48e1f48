//! Applying a tokenizer's chat template (`tokenizer_config.json`'s `chat_template`, a Jinja
//! template run here by minijinja) to an example: the user turn is the prompt, the assistant
//! turn the completion. Without a template, or when it cannot be applied, prompt and completion
//! are concatenated, and that is said once.

use minijinja::{context, Environment, Error, ErrorKind};

use super::shards::{Texts, TokenizerDir};
use super::Example;
use crate::progress::Progress;

fn raise_exception(message: String) -> Result<String, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// The texts to tokenize for each example.
pub fn texts_for(tok: &TokenizerDir, examples: &[&Example], progress: &dyn Progress) -> Vec<Texts> {
    let plain = |e: &Example| Texts {
        prompt: e.prompt.clone(),
        completion: format!("\n{}", e.completion),
        templated: false,
    };
    let Some(source) = &tok.chat_template else {
        progress
            .warn("the tokenizer has no chat template: prompts and completions are concatenated");
        return examples.iter().map(|e| plain(e)).collect();
    };
    let mut env = Environment::new();
    env.add_function("raise_exception", raise_exception);
    if let Err(e) = env.add_template("chat", source) {
        progress.warn(&format!(
            "the tokenizer's chat template does not load ({e}): prompts and completions are concatenated"
        ));
        return examples.iter().map(|e| plain(e)).collect();
    }
    let tmpl = env.get_template("chat").expect("added above");
    let bos = tok.bos.clone().unwrap_or_default();
    let eos = tok.eos.as_ref().map(|e| e.0.clone()).unwrap_or_default();
    let mut warned = false;
    examples
        .iter()
        .map(|e| {
            let user = context! { role => "user", content => e.prompt };
            let assistant = context! { role => "assistant", content => e.completion };
            let prompt = tmpl.render(context! {
                messages => vec![user.clone()], add_generation_prompt => true,
                bos_token => bos, eos_token => eos,
            });
            let full = tmpl.render(context! {
                messages => vec![user, assistant], add_generation_prompt => false,
                bos_token => bos, eos_token => eos,
            });
            match (prompt, full) {
                (Ok(p), Ok(f)) if f.starts_with(&p) && f.len() > p.len() => Texts {
                    completion: f[p.len()..].to_string(),
                    prompt: p,
                    templated: true,
                },
                _ => {
                    if !warned {
                        progress.warn("the chat template does not render a conversation as a prompt followed by its answer: prompts and completions are concatenated");
                        warned = true;
                    }
                    plain(e)
                }
            }
        })
        .collect()
}
