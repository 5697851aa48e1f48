//! Tokens with byte spans, read with nom.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, multispace0, none_of};
use nom::combinator::{map, recognize, value};
use nom::multi::many0;
use nom::sequence::{delimited, preceded};
use nom::{IResult, Parser};

use super::QueryError;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// A bare word: keywords, names, globs, numbers, dates, hex ids (`memory_*`,
    /// `Scheduler.schedule`, `2024-01-01`, `3fa9c1`).
    Word(String),
    /// `#42`
    Hash(u64),
    /// `"text"`, escapes `\"` and `\\`; other backslashes are kept as written.
    Str(String),
    /// `=`, `!=`, `<`, `>`, `<=`, `>=`, `~`
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '*' | '?' | '/' | '-' | '[' | ']')
}

fn string(input: &str) -> IResult<&str, String> {
    delimited(
        char('"'),
        many0(alt((
            value('"', tag("\\\"")),
            value('\\', tag("\\\\")),
            // Any other backslash is kept, so regular expressions read naturally: "a\.b".
            none_of("\""),
        ))),
        char('"'),
    )
    .map(|chars: Vec<char>| chars.into_iter().collect())
    .parse(input)
}

fn op(input: &str) -> IResult<&str, &'static str> {
    alt((
        value("!=", tag("!=")),
        value("<=", tag("<=")),
        value(">=", tag(">=")),
        value("=", tag("=")),
        value("<", tag("<")),
        value(">", tag(">")),
        value("~", tag("~")),
    ))
    .parse(input)
}

fn one(input: &str) -> IResult<&str, Tok> {
    alt((
        map(string, Tok::Str),
        map(
            preceded(char('#'), take_while1(|c: char| c.is_ascii_digit())),
            |d: &str| Tok::Hash(d.parse().unwrap_or(u64::MAX)),
        ),
        map(op, Tok::Op),
        value(Tok::LParen, char('(')),
        value(Tok::RParen, char(')')),
        value(Tok::Comma, char(',')),
        map(recognize(take_while1(is_word_char)), |w: &str| {
            Tok::Word(w.to_string())
        }),
    ))
    .parse(input)
}

/// Split `text` into tokens. An unexpected character or an unterminated string is an error
/// pointing at it.
pub fn lex(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let (after_ws, _) =
            multispace0::<&str, nom::error::Error<&str>>(rest).expect("whitespace never fails");
        rest = after_ws;
        // `--` starts a comment to the end of the line.
        if rest.starts_with("--") {
            let (after, _) = take_while::<_, &str, nom::error::Error<&str>>(|c| c != '\n')(rest)
                .expect("never fails");
            rest = after;
            continue;
        }
        if rest.is_empty() {
            return Ok(out);
        }
        let start = text.len() - rest.len();
        match one(rest) {
            Ok((after, tok)) => {
                let end = text.len() - after.len();
                if matches!(tok, Tok::Hash(_)) && text[start + 1..end].parse::<u64>().is_err() {
                    return Err(QueryError::at(
                        text,
                        start,
                        end,
                        format!("number too large: `{}`", &text[start..end]),
                    ));
                }
                out.push(Token { tok, start, end });
                rest = after;
            }
            Err(_) => {
                let c = rest.chars().next().expect("not empty");
                let message = if c == '"' {
                    "unterminated string".to_string()
                } else {
                    format!("unexpected character `{c}`")
                };
                return Err(QueryError::at(text, start, start + c.len_utf8(), message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_spans() {
        let toks = lex(r#"issues where title ~ "CUDA \"oom\"" and #12 != 3fa9c1, (x)"#).unwrap();
        let kinds: Vec<Tok> = toks.iter().map(|t| t.tok.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                Tok::Word("issues".into()),
                Tok::Word("where".into()),
                Tok::Word("title".into()),
                Tok::Op("~"),
                Tok::Str("CUDA \"oom\"".into()),
                Tok::Word("and".into()),
                Tok::Hash(12),
                Tok::Op("!="),
                Tok::Word("3fa9c1".into()),
                Tok::Comma,
                Tok::LParen,
                Tok::Word("x".into()),
                Tok::RParen,
            ]
        );
        assert_eq!((toks[4].start, toks[4].end), (21, 35));
        assert!(lex("issues -- a comment\n limit 3").unwrap().len() == 3);
        let err = lex("issues where x = \"open").unwrap_err();
        assert_eq!(err.diagnostic().unwrap().start, 17);
        assert!(lex("issues ; limit").is_err());
    }
}
