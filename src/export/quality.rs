//! The quality score of an example: the mean of documented components, each 0 or 1 (the link
//! confidence is its own value). `--min-quality` drops examples below a score.

/// Text shorter than this says too little to learn from.
pub const MIN_TEXT: usize = 30;
/// Changes of more than this many lines teach more noise than fix.
pub const MAX_CHANGED_LINES: u32 = 400;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Quality {
    /// The input text (issue body, commit message, symbol body) has at least [`MIN_TEXT`]
    /// characters.
    pub text_length: f32,
    /// The input shows code: a fenced block, a traceback, or a diff or body of code.
    pub has_code: f32,
    /// The example has an answer (a fix, a resolving comment, a message).
    pub has_resolution: f32,
    /// Written by a person, not a bot.
    pub not_bot: f32,
    /// The change is 1 to [`MAX_CHANGED_LINES`] lines (1 when the example has no change).
    pub diff_size: f32,
    /// The lowest confidence of the links the example relies on (1 without links).
    pub link_confidence: f32,
}

fn bit(b: bool) -> f32 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl Quality {
    pub fn measure(
        text: &str,
        resolved: bool,
        bot: bool,
        changed_lines: Option<u32>,
        link_confidence: f32,
    ) -> Quality {
        let code = text.contains("```")
            || text.contains("Traceback")
            || text.contains("    ")
            || changed_lines.is_some();
        Quality {
            text_length: bit(text.trim().len() >= MIN_TEXT),
            has_code: bit(code),
            has_resolution: bit(resolved),
            not_bot: bit(!bot),
            diff_size: bit(changed_lines.is_none_or(|n| (1..=MAX_CHANGED_LINES).contains(&n))),
            link_confidence,
        }
    }

    /// The mean of the components, rounded to three places.
    pub fn score(&self) -> f32 {
        let sum = self.text_length
            + self.has_code
            + self.has_resolution
            + self.not_bot
            + self.diff_size
            + self.link_confidence;
        (sum / 6.0 * 1000.0).round() / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_and_score() {
        let q = Quality::measure(
            "Traceback (most recent call last): boom in free_blocks",
            true,
            false,
            Some(12),
            0.9,
        );
        assert_eq!(q.score(), ((5.0 + 0.9) / 6.0 * 1000.0_f32).round() / 1000.0);
        let bot = Quality::measure("bump", true, true, Some(5000), 1.0);
        assert_eq!(bot.text_length, 0.0);
        assert_eq!(bot.not_bot, 0.0);
        assert_eq!(bot.diff_size, 0.0);
    }
}
