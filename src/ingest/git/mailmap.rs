//! The `.mailmap` a history was read with, kept in the lore file, so that readers show
//! people as git shows them (`lore blame` maps each commit's author and committer through
//! it, as `git blame` does) without opening the repository.

use std::borrow::Cow;

use gix::bstr::{BStr, ByteSlice};
use gix::mailmap::Snapshot;

/// `meta` key of the mailmap of the last history ingest, in `.mailmap` syntax (empty when
/// the repository has none).
pub const MAILMAP_KEY: &str = "git.mailmap";

/// `mailmap`'s entries in `.mailmap` syntax, one per line: [`parse`] gives the same mapping.
pub fn to_text(mailmap: &Snapshot) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in mailmap.entries() {
        let old_email = entry.old_email();
        if let Some(name) = entry.new_name() {
            out.extend_from_slice(name);
            out.push(b' ');
        }
        // A name-only entry keeps the email: `Proper Name <commit@email>`.
        let new_email = entry.new_email();
        if new_email.is_some() || entry.old_name().is_some() {
            push_email(&mut out, new_email.unwrap_or(old_email));
            out.push(b' ');
        }
        if let Some(name) = entry.old_name() {
            out.extend_from_slice(name);
            out.push(b' ');
        }
        push_email(&mut out, old_email);
        out.push(b'\n');
    }
    out
}

fn push_email(out: &mut Vec<u8>, email: &BStr) {
    out.push(b'<');
    out.extend_from_slice(email);
    out.push(b'>');
}

/// A mailmap stored by [`to_text`] (lines git would ignore are ignored).
pub fn parse(text: &[u8]) -> Snapshot {
    Snapshot::from_bytes(text)
}

/// The name and email `mailmap` gives the person who signed as `name <email>`.
pub fn resolve<'a>(
    mailmap: &Snapshot,
    name: &'a str,
    email: &'a str,
) -> (Cow<'a, str>, Cow<'a, str>) {
    let signature = gix::actor::SignatureRef {
        name: name.as_bytes().as_bstr(),
        email: email.as_bytes().as_bstr(),
        time: "",
    };
    match mailmap.try_resolve_ref(signature) {
        None => (Cow::Borrowed(name), Cow::Borrowed(email)),
        Some(mapped) => (
            mapped.name.map_or(Cow::Borrowed(name), |n| {
                Cow::Owned(n.to_str_lossy().into_owned())
            }),
            mapped.email.map_or(Cow::Borrowed(email), |e| {
                Cow::Owned(e.to_str_lossy().into_owned())
            }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form of `.mailmap` line git documents, and two lines for one address.
    const MAILMAP: &str = "\
# a comment
Proper Name <commit@example.com>
<proper@example.com> <old@example.com>
Both Changed <both@example.com> <both-old@example.com>
Named Match <named@example.com> Commit Name <shared@example.com>
<email-only@example.com> Other Name <shared@example.com>
Joe <joe@example.com> joe <JOE@Example.com>
Alias <alias@example.com>
";

    const PEOPLE: [(&str, &str); 10] = [
        ("anyone", "commit@example.com"),
        ("anyone", "old@example.com"),
        ("someone", "both-old@example.com"),
        ("Commit Name", "shared@example.com"),
        ("Other Name", "shared@example.com"),
        ("Third Name", "shared@example.com"),
        ("joe", "joe@example.com"),
        ("joe", "Joe@example.com"),
        ("Unmapped", "nobody@example.com"),
        ("alias", "ALIAS@example.com"),
    ];

    fn resolved(mailmap: &Snapshot) -> Vec<(String, String)> {
        PEOPLE
            .iter()
            .map(|(name, email)| {
                let (n, e) = resolve(mailmap, name, email);
                (n.into_owned(), e.into_owned())
            })
            .collect()
    }

    #[test]
    fn stored_text_maps_every_person_as_the_original() {
        let original = Snapshot::from_bytes(MAILMAP.as_bytes());
        let stored = to_text(&original);
        let again = parse(&stored);
        assert_eq!(resolved(&again), resolved(&original));
        // The mapping does map (the comparison is not between two empty mailmaps).
        let people = resolved(&original);
        assert_eq!(
            people[0],
            ("Proper Name".into(), "commit@example.com".into())
        );
        assert_eq!(people[1], ("anyone".into(), "proper@example.com".into()));
        assert_eq!(
            people[2],
            ("Both Changed".into(), "both@example.com".into())
        );
        assert_eq!(
            people[3],
            ("Named Match".into(), "named@example.com".into())
        );
        assert_eq!(
            people[4],
            ("Other Name".into(), "email-only@example.com".into())
        );
        assert_eq!(people[8], ("Unmapped".into(), "nobody@example.com".into()));
        // Stored again, the text is the same.
        assert_eq!(to_text(&again), stored);
    }

    #[test]
    fn an_empty_mailmap_maps_nobody() {
        let empty = parse(&to_text(&Snapshot::default()));
        assert!(to_text(&empty).is_empty());
        assert_eq!(
            resolve(&empty, "ehuss", "eric@huss.org"),
            (Cow::Borrowed("ehuss"), Cow::Borrowed("eric@huss.org"))
        );
    }
}
