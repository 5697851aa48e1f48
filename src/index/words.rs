//! Code-aware word splitting shared by the full-text index and the built-in embedder.
//!
//! A word is a run of letters, digits and underscores. Identifiers are split into their sub-words
//! (`free_blocks`, `freeBlocks` and `FreeBlocks` all give `free` and `blocks`), and a word made of
//! several sub-words is also kept whole (`free_blocks` → `freeblocks`), so an exact identifier in a
//! query ranks above documents that only share its parts.

/// One token: lower-cased text, byte span in the input, and word position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordToken {
    pub text: String,
    pub start: usize,
    pub end: usize,
    pub position: usize,
}

/// Split `text` into lower-cased sub-words and joined identifiers.
pub fn code_tokens(text: &str) -> Vec<WordToken> {
    let mut out = Vec::new();
    let mut position = 0usize;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = text[i..].chars().next().unwrap();
        if !is_word_char(c) {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        while i < bytes.len() {
            let c = text[i..].chars().next().unwrap();
            if !is_word_char(c) {
                break;
            }
            i += c.len_utf8();
        }
        let word = &text[start..i];
        let parts = sub_words(word);
        let first_position = position;
        for &(s, e) in &parts {
            out.push(WordToken {
                text: word[s..e].to_lowercase(),
                start: start + s,
                end: start + e,
                position,
            });
            position += 1;
        }
        if parts.len() > 1 {
            let joined: String = parts
                .iter()
                .map(|&(s, e)| word[s..e].to_lowercase())
                .collect();
            out.push(WordToken {
                text: joined,
                start,
                end: i,
                position: first_position,
            });
        }
    }
    out
}

/// Just the sub-words of `text`, lower-cased, without the joined forms (for embeddings).
pub fn sub_word_list(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for token in code_tokens(text) {
        // Joined forms share the position of their first part and come after the parts.
        if out
            .last()
            .is_some_and(|(p, _): &(usize, String)| *p >= token.position)
        {
            continue;
        }
        out.push((token.position, token.text));
    }
    out.into_iter().map(|(_, t)| t).collect()
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Byte ranges of the sub-words of one identifier.
fn sub_words(word: &str) -> Vec<(usize, usize)> {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    for (k, &(at, c)) in chars.iter().enumerate() {
        if c == '_' {
            if let Some(s) = start.take() {
                parts.push((s, at));
            }
            continue;
        }
        let Some(s) = start else {
            start = Some(at);
            continue;
        };
        let prev = chars[k - 1].1;
        let next = chars.get(k + 1).map(|&(_, n)| n);
        let boundary = (prev.is_lowercase() && c.is_uppercase())
            || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(|n| n.is_lowercase()));
        if boundary && prev != '_' {
            parts.push((s, at));
            start = Some(at);
        }
    }
    if let Some(s) = start {
        parts.push((s, word.len()));
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        code_tokens(s).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn identifiers_split_into_sub_words_and_keep_the_whole() {
        assert_eq!(texts("free_blocks"), ["free", "blocks", "freeblocks"]);
        assert_eq!(texts("freeBlocks"), ["free", "blocks", "freeblocks"]);
        assert_eq!(texts("FreeBlocks"), ["free", "blocks", "freeblocks"]);
        assert_eq!(texts("HTTPServer"), ["http", "server", "httpserver"]);
        assert_eq!(texts("__init__"), ["init"]);
        assert_eq!(texts("fp16 CUDA"), ["fp16", "cuda"]);
    }

    #[test]
    fn positions_and_spans_follow_the_text() {
        let tokens = code_tokens("see kvCache.free()");
        let summary: Vec<_> = tokens
            .iter()
            .map(|t| {
                (
                    t.text.as_str(),
                    t.position,
                    &"see kvCache.free()"[t.start..t.end],
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("see", 0, "see"),
                ("kv", 1, "kv"),
                ("cache", 2, "Cache"),
                ("kvcache", 1, "kvCache"),
                ("free", 3, "free"),
            ]
        );
        assert_eq!(
            sub_word_list("see kvCache.free()"),
            ["see", "kv", "cache", "free"]
        );
    }

    #[test]
    fn non_ascii_text_does_not_split_inside_characters() {
        assert_eq!(
            texts("größe_Ökonomie"),
            ["größe", "ökonomie", "größeökonomie"]
        );
        assert_eq!(texts("日本語 x"), ["日本語", "x"]);
    }
}
