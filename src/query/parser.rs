//! Tokens → [`Query`]. Recursive descent; every error points at a token and says what was
//! expected, with "did you mean" for near misses.

use super::ast::*;
use super::dates::parse_date;
use super::lexer::{lex, Tok, Token};
use super::schema::{self, Kind, KEYWORDS, RELATIONS};
use super::QueryError;

/// `commit` or `commit.sha` (a set, or a field of it), with spans.
fn return_item(word: &str, start: usize) -> ReturnItem {
    let (set, field) = match word.split_once('.') {
        Some((set, field)) => (set, Some(field)),
        None => (word, None),
    };
    ReturnItem {
        set: Word {
            text: set.to_string(),
            span: (start, start + set.len()),
        },
        field: field.map(|f| Word {
            text: f.to_string(),
            span: (start + set.len() + 1, start + word.len()),
        }),
    }
}

pub fn parse(text: &str) -> Result<Query, QueryError> {
    let toks = lex(text)?;
    let mut p = Parser {
        text,
        toks,
        pos: 0,
        depth: 0,
        comparisons: 0,
    };
    let q = p.query()?;
    if let Some(t) = p.toks.get(p.pos) {
        return Err(p.unexpected(
            t,
            "the end of the query or a clause (order by, limit, count, return)",
        ));
    }
    Ok(q)
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    pos: usize,
    /// `not`s and parentheses open around the current token.
    depth: usize,
    /// Comparisons read so far.
    comparisons: usize,
}

/// The deepest nesting of `not` and parentheses a query may have: deeper ones are refused
/// rather than risking the stack.
pub const MAX_DEPTH: usize = 256;
/// The most comparisons a query may hold.
pub const MAX_COMPARISONS: usize = 1000;

fn kind_names() -> Vec<&'static str> {
    Kind::ALL
        .iter()
        .flat_map(|k| [k.words().0, k.words().1])
        .collect()
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_word(&self) -> Option<String> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek_word().as_deref() == Some(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn end_span(&self) -> (usize, usize) {
        (self.text.len(), self.text.len() + 1)
    }

    fn err_here(&self, expected: &str) -> QueryError {
        match self.peek() {
            Some(t) => self.unexpected(t, expected),
            None => {
                let (s, e) = self.end_span();
                QueryError::at(
                    self.text,
                    s,
                    e,
                    format!("the query ends here; expected {expected}"),
                )
            }
        }
    }

    fn unexpected(&self, t: &Token, expected: &str) -> QueryError {
        let shown = &self.text[t.start..t.end];
        let mut message = format!("unexpected `{shown}`; expected {expected}");
        if let Tok::Word(w) = &t.tok {
            let candidates = RELATIONS
                .iter()
                .map(|r| r.name)
                .chain(KEYWORDS)
                .chain(kind_names());
            if let Some(near) = schema::nearest(w, candidates) {
                message.push_str(&format!(" (did you mean `{near}`?)"));
            }
        }
        QueryError::at(self.text, t.start, t.end, message)
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        let explain = self.eat_word("explain");
        let source = self.binding(true)?;
        let mut steps = Vec::new();
        let mut tail = Tail::default();
        loop {
            let Some(word) = self.peek_word() else {
                if self.peek().is_some() {
                    return Err(self.err_here("a relation or a clause"));
                }
                break;
            };
            if let Some(relation) = schema::relation(&word) {
                let t = self.toks[self.pos].clone();
                self.pos += 1;
                let target = self.binding(false)?;
                steps.push(Step {
                    relation,
                    target,
                    span: (t.start, t.end),
                });
                continue;
            }
            if self.clause(&mut tail)? {
                continue;
            }
            let t = self.toks[self.pos].clone();
            return Err(self.unexpected(&t, "a relation (fixed_by, touching, modifies, …) or a clause (where, order by, limit, count, return)"));
        }
        Ok(Query {
            explain,
            source,
            steps,
            tail,
        })
    }

    /// `order by`, `limit`, `count`, `return`. Returns false if the next word is none of them.
    fn clause(&mut self, tail: &mut Tail) -> Result<bool, QueryError> {
        let Some(word) = self.peek_word() else {
            return Ok(false);
        };
        let at = self.toks[self.pos].clone();
        let twice = |what: &str| {
            QueryError::at(
                self.text,
                at.start,
                at.end,
                format!("`{what}` is given twice"),
            )
        };
        match word.as_str() {
            "order" => {
                self.pos += 1;
                if !self.eat_word("by") {
                    return Err(self.err_here("`by` after `order`"));
                }
                let field = self.field()?;
                let desc = if self.eat_word("desc") {
                    true
                } else {
                    self.eat_word("asc");
                    false
                };
                if tail.order.is_some() {
                    return Err(twice("order by"));
                }
                tail.order = Some((field, desc));
            }
            "limit" => {
                self.pos += 1;
                let n = match self.peek() {
                    Some(Token {
                        tok: Tok::Word(w),
                        start,
                        end,
                    }) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => {
                        match w.parse::<usize>() {
                            Ok(n) => n,
                            Err(_) => {
                                return Err(QueryError::at(
                                    self.text,
                                    *start,
                                    *end,
                                    format!("number too large for `limit`: `{w}`"),
                                ))
                            }
                        }
                    }
                    _ => return Err(self.err_here("a number after `limit`")),
                };
                self.pos += 1;
                if tail.limit.is_some() {
                    return Err(twice("limit"));
                }
                tail.limit = Some(n);
            }
            "count" => {
                self.pos += 1;
                let by = if self.eat_word("by") {
                    Some(self.field()?)
                } else {
                    None
                };
                if tail.count.is_some() {
                    return Err(twice("count"));
                }
                tail.count = Some(by);
            }
            "return" => {
                self.pos += 1;
                loop {
                    let (name, start) = match self.peek() {
                        Some(Token {
                            tok: Tok::Word(w),
                            start,
                            ..
                        }) => (w.to_ascii_lowercase(), *start),
                        _ => return Err(self.err_here("a set to return (a kind named in the query, e.g. `commit`), or a field of one (`commit.sha`)")),
                    };
                    self.pos += 1;
                    tail.returns.push(return_item(&name, start));
                    if !matches!(self.peek(), Some(Token { tok: Tok::Comma, .. })) {
                        break;
                    }
                    self.pos += 1;
                }
            }
            "where" | "since" | "until" => {
                return Err(QueryError::at(
                    self.text,
                    at.start,
                    at.end,
                    format!("`{word}` must follow the set it filters (before order by, limit, count and return)"),
                ))
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn field(&mut self) -> Result<Word, QueryError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Word(w),
                start,
                end,
            }) => {
                let word = Word {
                    text: w.to_ascii_lowercase(),
                    span: (*start, *end),
                };
                self.pos += 1;
                Ok(word)
            }
            _ => Err(self.err_here("a field name")),
        }
    }

    fn binding(&mut self, source: bool) -> Result<Binding, QueryError> {
        let start = self.peek().map_or(self.text.len(), |t| t.start);
        let mut end = start;
        let mut kind = None;
        let mut singular = false;
        if let Some(word) = self.peek_word() {
            if let Some((k, plural)) = Kind::from_word(&word) {
                kind = Some(k);
                singular = !plural;
                end = self.toks[self.pos].end;
                self.pos += 1;
            }
        }
        if source && kind.is_none() {
            let expected = "an entity set: issues, prs, commits, files, symbols, functions, classes, methods or authors";
            return Err(self.err_here(expected));
        }
        // A pattern: #N, "text", or a word that is not a keyword.
        let pattern = match self.peek().cloned() {
            Some(Token {
                tok: Tok::Hash(n),
                end: e,
                ..
            }) => {
                self.pos += 1;
                end = e;
                Some(Pattern::Number(n))
            }
            Some(Token {
                tok: Tok::Str(s),
                end: e,
                ..
            }) => {
                self.pos += 1;
                end = e;
                Some(Pattern::Text {
                    text: s,
                    quoted: true,
                })
            }
            // A bare word names an item after a singular kind (`file memory_utils`) or a
            // target without a kind (`touching memory_utils`); after a plural it would hide a
            // misspelt relation (`issues fixd_by`), so it is not taken there.
            Some(Token {
                tok: Tok::Word(w),
                end: e,
                ..
            }) if !schema::is_reserved(&w) && (singular || kind.is_none()) => {
                self.pos += 1;
                end = e;
                match (kind, w.parse::<u64>()) {
                    (Some(Kind::Issues | Kind::Prs), Ok(n)) => Some(Pattern::Number(n)),
                    _ => Some(Pattern::Text {
                        text: w,
                        quoted: false,
                    }),
                }
            }
            _ => None,
        };
        // A step may have neither kind nor item: `issues fixed_by` is every issue fixed by
        // anything.
        let mut filters = Vec::new();
        while let Some(filter) = self.filter()? {
            filters.push(filter);
        }
        Ok(Binding {
            kind,
            singular,
            pattern,
            filters,
            span: (start, end.max(start)),
        })
    }

    /// The next filter of a set, if the next word starts one.
    fn filter(&mut self) -> Result<Option<Filter>, QueryError> {
        let Some(word) = self.peek_word() else {
            return Ok(None);
        };
        let filter = match word.as_str() {
            "where" => {
                self.pos += 1;
                Filter::Where(self.expr()?)
            }
            "since" => Filter::Since(self.date_after_keyword()?),
            "until" => Filter::Until(self.date_after_keyword()?),
            "matching" => self.matching()?,
            "concerning" => {
                self.pos += 1;
                Filter::Concerning(self.issue_number("an issue number (#N)")?)
            }
            "similar" => self.similar()?,
            _ => return Ok(None),
        };
        Ok(Some(filter))
    }

    /// `since DATE` / `until DATE`, the keyword not yet taken.
    fn date_after_keyword(&mut self) -> Result<DateLit, QueryError> {
        self.pos += 1;
        let date = match self.peek() {
            Some(Token {
                tok: Tok::Word(d) | Tok::Str(d),
                ..
            }) => d.clone(),
            _ => return Err(self.err_here("a date (YYYY-MM-DD)")),
        };
        let t = self.toks[self.pos].clone();
        let Some(at) = parse_date(&date) else {
            return Err(QueryError::at(
                self.text,
                t.start,
                t.end,
                format!("`{date}` is not a date (expected YYYY-MM-DD or an RFC 3339 time)"),
            ));
        };
        self.pos += 1;
        Ok(DateLit { text: date, at })
    }

    /// `matching "text" [using bm25|vector|hybrid]`, the keyword not yet taken.
    fn matching(&mut self) -> Result<Filter, QueryError> {
        self.pos += 1;
        let text = match self.peek() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => s.clone(),
            _ => return Err(self.err_here("the text to search for, in quotes")),
        };
        self.pos += 1;
        let mut ranker = SearchRanker::Bm25;
        if self.eat_word("using") {
            let word = self.peek_word();
            ranker = match word
                .as_deref()
                .and_then(|w| SearchRanker::ALL.into_iter().find(|r| r.name() == w))
            {
                Some(r) => r,
                None => match self.peek() {
                    Some(t) => {
                        return Err(QueryError::at(
                            self.text,
                            t.start,
                            t.end,
                            "expected bm25, vector or hybrid after `using`".into(),
                        ))
                    }
                    None => return Err(self.err_here("bm25, vector or hybrid")),
                },
            };
            self.pos += 1;
        }
        Ok(Filter::Matching { text, ranker })
    }

    /// `#N`, or an error saying `expected`.
    fn issue_number(&mut self, expected: &str) -> Result<u64, QueryError> {
        match self.peek() {
            Some(Token {
                tok: Tok::Hash(n), ..
            }) => {
                let n = *n;
                self.pos += 1;
                Ok(n)
            }
            _ => Err(self.err_here(expected)),
        }
    }

    /// `similar to #N` / `similar to "text"`, the keyword not yet taken.
    fn similar(&mut self) -> Result<Filter, QueryError> {
        self.pos += 1;
        if !self.eat_word("to") {
            return Err(self.err_here("`to` (similar to #N, similar to \"text\")"));
        }
        let target = match self.peek() {
            Some(Token {
                tok: Tok::Hash(n), ..
            }) => Pattern::Number(*n),
            Some(Token {
                tok: Tok::Str(s), ..
            }) => Pattern::Text {
                text: s.clone(),
                quoted: true,
            },
            _ => return Err(self.err_here("an issue (#N) or a text in quotes")),
        };
        self.pos += 1;
        Ok(Filter::Similar(target))
    }

    fn expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.and_expr()?;
        while self.eat_word("or") {
            let right = self.and_expr()?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, QueryError> {
        let mut left = self.unary()?;
        while self.eat_word("and") {
            let right = self.unary()?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// Go one level deeper into `not` or parentheses, or refuse at the token.
    fn descend(&mut self) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let t = self.toks[self.pos.min(self.toks.len() - 1)].clone();
            return Err(QueryError::at(
                self.text,
                t.start,
                t.end,
                format!("the query nests deeper than {MAX_DEPTH} levels of `not` and parentheses"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.peek_word().as_deref() == Some("not") {
            self.descend()?;
            self.pos += 1;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if matches!(
            self.peek(),
            Some(Token {
                tok: Tok::LParen,
                ..
            })
        ) {
            self.descend()?;
            self.pos += 1;
            let e = self.expr()?;
            self.depth -= 1;
            if !matches!(
                self.peek(),
                Some(Token {
                    tok: Tok::RParen,
                    ..
                })
            ) {
                return Err(self.err_here("`)`"));
            }
            self.pos += 1;
            return Ok(e);
        }
        let start = self.peek().map_or(self.text.len(), |t| t.start);
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            let end = self.peek().map_or(start + 1, |t| t.end);
            return Err(QueryError::at(
                self.text,
                start,
                end,
                format!("the query has more than {MAX_COMPARISONS} comparisons"),
            ));
        }
        let field = match self.peek() {
            Some(Token {
                tok: Tok::Word(w), ..
            }) if !matches!(w.to_ascii_lowercase().as_str(), "and" | "or" | "not") => {
                w.to_ascii_lowercase()
            }
            _ => return Err(self.err_here("a field, `not` or `(`")),
        };
        self.pos += 1;
        let op = match self.peek() {
            Some(Token {
                tok: Tok::Op(o), ..
            }) => match *o {
                "=" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                ">" => CmpOp::Gt,
                "<=" => CmpOp::Le,
                ">=" => CmpOp::Ge,
                _ => CmpOp::Regex,
            },
            Some(Token {
                tok: Tok::Word(w), ..
            }) if w.eq_ignore_ascii_case("contains") => CmpOp::Contains,
            _ => return Err(self.err_here("a comparison (=, !=, <, >, <=, >=, ~ or contains)")),
        };
        self.pos += 1;
        let value = match self.peek() {
            Some(Token {
                tok: Tok::Str(s), ..
            }) => Value::Text {
                text: s.clone(),
                quoted: true,
            },
            Some(Token {
                tok: Tok::Hash(n), ..
            }) => Value::Number(*n as f64),
            Some(Token {
                tok: Tok::Word(w), ..
            }) => match w.parse::<f64>() {
                Ok(n) if !w.contains('-') || w.starts_with('-') => Value::Number(n),
                _ => Value::Text {
                    text: w.clone(),
                    quoted: false,
                },
            },
            _ => return Err(self.err_here("a value (a word, a number or a \"string\")")),
        };
        let end = self.toks[self.pos].end;
        self.pos += 1;
        Ok(Expr::Compare {
            field,
            op,
            value,
            span: (start, end),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_back() {
        for q in [
            "issues fixed_by commit touching memory_utils",
            "issues where state = closed and (label = bug or label = \"needs triage\") fixed_by commits",
            "commits touching \"minillm/worker/memory_utils.py\" since 2024-01-10 until 2024-02-01 order by date desc limit 5",
            "issue #7 fixed_by commit introduced_by commit",
            "explain symbols modified_by commits where class = fix count by name",
            "issues fixed_by commit touching memory_* return commit, file",
            "functions where not name ~ \"^_\" count",
        ] {
            let ast = parse(q).unwrap_or_else(|e| panic!("{q}: {e}"));
            let printed = ast.to_string();
            let again = parse(&printed).unwrap_or_else(|e| panic!("{printed}: {e}"));
            assert_eq!(strip(again), strip(ast), "{q} -> {printed}");
        }
    }

    /// Spans differ between the original and the printed text.
    fn strip(mut q: Query) -> String {
        q.source.span = (0, 0);
        for s in &mut q.steps {
            s.span = (0, 0);
            s.target.span = (0, 0);
        }
        format!("{q:?}").replace(|c: char| c.is_ascii_digit(), "")
    }

    #[test]
    fn errors_point_at_the_token() {
        let err = parse("issues fixd_by commit")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert_eq!((err.start, err.end), (7, 14));
        assert!(
            err.message.contains("did you mean `fixed_by`?"),
            "{}",
            err.message
        );
        let err = parse("isues").unwrap_err().diagnostic().unwrap().clone();
        assert!(
            err.message.contains("did you mean `issues`?"),
            "{}",
            err.message
        );
        let err = parse("issues where state = ")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert!(err.message.contains("ends here"), "{}", err.message);
        let err = parse("issues limit x")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert!(err.message.contains("a number after `limit`"));
        let err = parse("issues matching oom")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert!(err.message.contains("in quotes"), "{}", err.message);
        let err = parse("issues matching \"oom\" using magic")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert!(
            err.message.contains("bm25, vector or hybrid"),
            "{}",
            err.message
        );
        let err = parse("files concerning 7")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert!(err.message.contains("an issue number"), "{}", err.message);
        let err = parse("issues similar #3")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert!(err.message.contains("`to`"), "{}", err.message);
        for q in [
            "issues matching \"CUDA out of memory\" order by score desc",
            "issues matching \"oom\" using hybrid where state = open",
            "issues similar to #123 where state = closed",
            "symbols similar to \"free the KV cache blocks\" limit 5",
            "files concerning #7 limit 3",
        ] {
            let parsed = parse(q).unwrap();
            assert_eq!(parsed.to_string(), q);
        }
        let err = parse("commits since yesterday")
            .unwrap_err()
            .diagnostic()
            .unwrap()
            .clone();
        assert!(err.message.contains("not a date"));
    }

    #[test]
    fn deep_and_long_queries_are_refused_not_crashed() {
        let nested = format!(
            "issues where {}state = open{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let err = parse(&nested).unwrap_err().diagnostic().unwrap().clone();
        assert!(err.message.contains("deeper than 256"), "{}", err.message);
        assert_eq!(err.start, "issues where ".len() + 256);
        let nots = format!("issues where {}state = open", "not ".repeat(10_000));
        let err = parse(&nots).unwrap_err().diagnostic().unwrap().clone();
        assert!(err.message.contains("deeper than 256"), "{}", err.message);
        let flat = format!("issues where {}", vec!["state = open"; 8_000].join(" and "));
        let err = parse(&flat).unwrap_err().diagnostic().unwrap().clone();
        assert!(
            err.message.contains("more than 1000 comparisons"),
            "{}",
            err.message
        );
        // At the limits, queries parse.
        let deepest = format!(
            "issues where {}state = open{}",
            "(".repeat(256),
            ")".repeat(256)
        );
        assert!(parse(&deepest).is_ok());
        let longest = format!("issues where {}", vec!["state = open"; 1000].join(" or "));
        assert!(parse(&longest).is_ok());
    }

    #[test]
    fn numbers_too_large_are_named() {
        let err = parse("issues limit 99999999999999999999").unwrap_err();
        let d = err.diagnostic().unwrap();
        assert!(
            d.message.contains("number too large for `limit`"),
            "{}",
            d.message
        );
        assert_eq!(&d.text[d.start..d.end], "99999999999999999999");
        let err = parse("issues similar to #18446744073709551616").unwrap_err();
        let d = err.diagnostic().unwrap();
        assert_eq!(d.message, "number too large: `#18446744073709551616`");
        assert!(parse("issues similar to #18446744073709551615").is_ok());
    }

    #[test]
    fn an_impossible_date_in_a_comparison_is_refused_as_since_refuses_it() {
        let text = "issues where created > 2024-02-30";
        let err = crate::query::bind::bind(text, &parse(text).unwrap()).unwrap_err();
        let d = err.diagnostic().unwrap();
        assert!(
            d.message.contains("`2024-02-30` is not a date"),
            "{}",
            d.message
        );
        let ok = "issues where created > 2024-02-28 and title ~ \"2024-99\"";
        assert!(crate::query::bind::bind(ok, &parse(ok).unwrap()).is_ok());
    }
}
