//! The SQL the connector sends, built once from the catalog at cold start. Pure: no IO here.
//!
//! Every value is a bind parameter; the only names in the text are the relation (as the catalog spells it,
//! double-quoted) and the contract's column names. Nothing is ever built from request input.
//!
//! # The sync order
//!
//! The engine orders records by `(updated_at, id)` and compares ids with [`crate::sync::cmp_ids`]: ids made
//! of 1 to 38 ASCII digits by numeric value (then as text), before every other id, which compare byte by
//! byte. A database's own text order (its collation) differs from that, and a connector whose order
//! disagrees with the engine's loses rows. So the keyset does not compare `id` but a sort key that encodes
//! `cmp_ids` as a byte string compared under the `"C"` collation:
//!
//! - a numeric id `n`: `'0'` + `n` without leading zeros, left-padded with zeros to 38 digits + `n`;
//! - any other id `s`: `'1'` + `s`.
//!
//! [`sort_key`] computes the same key in Rust (for the bind parameter of a position), and a unit test
//! checks on random ids that comparing keys is `cmp_ids`. [`SORT_KEY_INDEX`] is the index that makes the
//! keyset an index range scan; the README gives it to customers.

use std::cmp::Ordering;

use super::settings::quote_ident;

/// The sort key SQL computes for the `id` column, under the `"C"` collation (see the module docs).
pub const SORT_KEY_SQL: &str =
    r#"(CASE WHEN "id" ~ '^[0-9]{1,38}$' THEN '0' || lpad(ltrim("id", '0'), 38, '0') || "id" ELSE '1' || "id" END) COLLATE "C""#;

/// The index that makes contact pages an index range scan (without the relation name), as given in the
/// README: `CREATE INDEX talkdesk_contacts_sync ON talkdesk_contacts {SORT_KEY_INDEX}`.
pub const SORT_KEY_INDEX: &str =
    r#"(updated_at, (CASE WHEN id ~ '^[0-9]{1,38}$' THEN '0' || lpad(ltrim(id, '0'), 38, '0') || id ELSE '1' || id END) COLLATE "C")"#;

/// The longest id taken as a number, as in [`crate::sync::cmp_ids`].
const MAX_NUMERIC_DIGITS: usize = 38;

/// The sort key of `id`, as [`SORT_KEY_SQL`] computes it.
pub fn sort_key(id: &str) -> String {
    if !id.is_empty() && id.len() <= MAX_NUMERIC_DIGITS && id.bytes().all(|b| b.is_ascii_digit()) {
        format!("0{:0>38}{id}", id.trim_start_matches('0'))
    } else {
        format!("1{id}")
    }
}

/// Compares two ids the way the database orders their sort keys (bytes, the `"C"` collation).
pub fn cmp_sort_keys(a: &str, b: &str) -> Ordering {
    sort_key(a).as_bytes().cmp(sort_key(b).as_bytes())
}

/// How a column of the contract is typed and whether the relation must have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `text` or `varchar`: the record's id, part of the sort key.
    Id,
    /// Any string type (`text`, `varchar`, `char`, `citext`, ...).
    Text,
    /// An array of a string type (`text[]`, ...).
    TextList,
    /// `timestamptz`.
    Instant,
}

impl Kind {
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Id => "text or varchar",
            Kind::Text => "a string type such as text",
            Kind::TextList => "an array of a string type such as text[]",
            Kind::Instant => "timestamptz (timestamp with time zone)",
        }
    }

    /// What a selected value is cast to, so every row decodes the same way.
    fn sql_type(self) -> &'static str {
        match self {
            Kind::Id | Kind::Text => "text",
            Kind::TextList => "text[]",
            Kind::Instant => "timestamptz",
        }
    }
}

/// A column of the contract: its name, type and whether it is required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
}

const fn field(name: &'static str, kind: Kind, required: bool) -> Field {
    Field { name, kind, required }
}

/// The contacts relation's columns, in the order they are selected.
pub const CONTACT_FIELDS: &[Field] = &[
    field("id", Kind::Id, true),
    field("updated_at", Kind::Instant, true),
    field("name", Kind::Text, true),
    field("company", Kind::Text, false),
    field("title", Kind::Text, false),
    field("emails", Kind::TextList, false),
    field("phones", Kind::TextList, false),
    field("photo_url", Kind::Text, false),
    field("address", Kind::Text, false),
    field("websites", Kind::TextList, false),
    field("twitter", Kind::Text, false),
    field("url", Kind::Text, false),
];

/// The interactions relation's columns, in the order they are selected.
pub const INTERACTION_FIELDS: &[Field] = &[
    field("id", Kind::Text, true),
    field("contact_id", Kind::Text, true),
    field("type", Kind::Text, true),
    field("date", Kind::Instant, true),
    field("subject", Kind::Text, false),
    field("description", Kind::Text, false),
    field("url", Kind::Text, false),
    field("priority", Kind::Text, false),
    field("status", Kind::Text, false),
];

/// The optional agents relation's columns (`POSTGRES_AGENTS_RELATION`), in the order they are selected.
pub const AGENT_FIELDS: &[Field] = &[
    field("id", Kind::Text, true),
    field("name", Kind::Text, true),
    field("email", Kind::Text, true),
];

/// One page of agents in id order (byte order, so the keyset is the same on every collation). `$1` the
/// limit.
pub fn agents_first_page_sql(relation: &str, select: &str) -> String {
    format!(
        "SELECT {select} FROM {relation} WHERE \"id\" IS NOT NULL \
         ORDER BY \"id\"::text COLLATE \"C\" LIMIT $1"
    )
}

/// The page of agents after id `$1`; `$2` the limit.
pub fn agents_after_sql(relation: &str, select: &str) -> String {
    format!(
        "SELECT {select} FROM {relation} WHERE \"id\" IS NOT NULL AND \"id\"::text COLLATE \"C\" > $1::text COLLATE \"C\" \
         ORDER BY \"id\"::text COLLATE \"C\" LIMIT $2"
    )
}

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogColumn {
    pub name: String,
    /// `pg_type.typname`, e.g. `text`, `timestamptz`, `_text`.
    pub type_name: String,
    /// `pg_type.typcategory`: `S` strings, `A` arrays, `D` date/time...
    pub category: String,
    /// For arrays, the element type's category.
    pub element_category: String,
}

impl CatalogColumn {
    fn fits(&self, kind: Kind) -> bool {
        match kind {
            Kind::Id => matches!(self.type_name.as_str(), "text" | "varchar"),
            Kind::Text => self.category == "S",
            Kind::TextList => self.category == "A" && self.element_category == "S",
            Kind::Instant => self.type_name == "timestamptz",
        }
    }
}

/// A table or view as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRelation {
    pub schema: String,
    pub name: String,
    pub can_select: bool,
    pub columns: Vec<CatalogColumn>,
}

impl CatalogRelation {
    /// `"schema"."name"`, as it goes into SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Why a relation does not fit the contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractError {
    #[error("relation {relation} does not exist (or is not visible to the database user)")]
    Missing { relation: String },
    #[error("the database user may not read relation {relation}: GRANT SELECT ON {relation} TO the bridge's user")]
    NotReadable { relation: String },
    #[error("relation {relation} has no column `{column}` ({expected}, required)")]
    MissingColumn {
        relation: String,
        column: &'static str,
        expected: &'static str,
    },
    #[error("column `{column}` of relation {relation} is {found}; expected {expected}")]
    WrongType {
        relation: String,
        column: &'static str,
        found: String,
        expected: &'static str,
    },
}

/// The select list for `fields`: present columns cast to the contract's type, absent optional ones as
/// typed NULLs, so rows always decode the same way. Errors name the relation and the column.
pub fn select_list(relation: &CatalogRelation, fields: &[Field]) -> Result<(String, Vec<&'static str>), ContractError> {
    let mut parts = Vec::with_capacity(fields.len());
    let mut present = Vec::new();
    for f in fields {
        match relation.columns.iter().find(|c| c.name == f.name) {
            Some(c) if c.fits(f.kind) => {
                present.push(f.name);
                parts.push(format!("{}::{}", quote_ident(f.name), f.kind.sql_type()));
            }
            Some(c) => {
                let found = match c.type_name.strip_prefix('_') {
                    Some(elem) if c.category == "A" => format!("{elem}[]"),
                    _ => c.type_name.clone(),
                };
                return Err(ContractError::WrongType {
                    relation: relation.quoted(),
                    column: f.name,
                    found,
                    expected: f.kind.describe(),
                });
            }
            None if f.required => {
                return Err(ContractError::MissingColumn {
                    relation: relation.quoted(),
                    column: f.name,
                    expected: f.kind.describe(),
                })
            }
            None => parts.push(format!("NULL::{}", f.kind.sql_type())),
        }
    }
    Ok((parts.join(", "), present))
}

/// Where a contact page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lower {
    /// From the first record: `$1` is the upper bound, `$2` the limit.
    None,
    /// From every record at or after an instant: `$1` the instant, `$2` the upper bound, `$3` the limit.
    Instant,
    /// Strictly after `(updated_at, sort key)`: `$1` the instant, `$2` the key, `$3` the upper bound,
    /// `$4` the limit.
    Keyset,
}

/// Every statement the connector runs, built once per discovered schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statements {
    pub contacts_from_start: String,
    pub contacts_from_instant: String,
    pub contacts_after_key: String,
    /// `$1` the id: one row if the contact exists.
    pub person_by_id: String,
    /// `$1` the lowercase emails, `$2` the most people: their ids. `None` without an `emails` column.
    pub people_by_emails: Option<String>,
    /// `$1` the E.164 phones, `$2` the most people. `None` without a `phones` column.
    pub people_by_phones: Option<String>,
    /// `$1` the id: one row (`emails`, `phones`, NULL for a column the relation lacks) if the contact exists.
    pub identifiers_of: String,
    /// `$1` the contact ids, `$2` the lowercase types, `$3` the most rows: newest first.
    pub interactions_of: String,
}

impl Statements {
    pub fn contacts(&self, lower: Lower) -> &str {
        match lower {
            Lower::None => &self.contacts_from_start,
            Lower::Instant => &self.contacts_from_instant,
            Lower::Keyset => &self.contacts_after_key,
        }
    }
}

/// The contact page statement for one kind of lower bound.
pub fn contacts_page_sql(relation: &str, select: &str, lower: Lower) -> String {
    let (bound, until, limit) = match lower {
        Lower::None => (String::new(), 1, 2),
        Lower::Instant => ("\"updated_at\" >= $1 AND ".to_string(), 2, 3),
        Lower::Keyset => (format!("(\"updated_at\", {SORT_KEY_SQL}) > ($1, $2) AND "), 3, 4),
    };
    format!(
        "SELECT {select} FROM {relation} WHERE {bound}\"updated_at\" <= ${until} AND \"id\" IS NOT NULL \
         ORDER BY \"updated_at\", {SORT_KEY_SQL} LIMIT ${limit}"
    )
}

/// Builds every statement from the two relations as the catalog describes them.
pub fn statements(contacts: &CatalogRelation, interactions: &CatalogRelation) -> Result<Statements, ContractError> {
    let (contact_select, present) = select_list(contacts, CONTACT_FIELDS)?;
    let (interaction_select, _) = select_list(interactions, INTERACTION_FIELDS)?;
    let c = contacts.quoted();
    let i = interactions.quoted();
    let people = |column: &str| {
        present.contains(&column).then(|| {
            format!(
                "SELECT \"id\"::text FROM {c} WHERE {}::text[] && $1::text[] AND \"id\" IS NOT NULL LIMIT $2",
                quote_ident(column)
            )
        })
    };
    Ok(Statements {
        contacts_from_start: contacts_page_sql(&c, &contact_select, Lower::None),
        contacts_from_instant: contacts_page_sql(&c, &contact_select, Lower::Instant),
        contacts_after_key: contacts_page_sql(&c, &contact_select, Lower::Keyset),
        person_by_id: format!("SELECT 1 FROM {c} WHERE \"id\" = $1 LIMIT 1"),
        people_by_emails: people("emails"),
        people_by_phones: people("phones"),
        identifiers_of: {
            let column = |name: &str| {
                if present.contains(&name) {
                    format!("{}::text[]", quote_ident(name))
                } else {
                    "NULL::text[]".to_string()
                }
            };
            format!(
                "SELECT {}, {} FROM {c} WHERE \"id\" = $1 LIMIT 1",
                column("emails"),
                column("phones")
            )
        },
        interactions_of: format!(
            "SELECT {interaction_select} FROM {i} WHERE \"contact_id\" = ANY($1::text[]) \
             AND lower(\"type\"::text) = ANY($2::text[]) AND \"date\" IS NOT NULL AND \"id\" IS NOT NULL \
             ORDER BY \"date\" DESC, \"id\" DESC LIMIT $3"
        ),
    })
}

/// Finds a relation: by schema and name, or by name along the user's `search_path` (as an unqualified name
/// in a query would). `$1` the schema or NULL, `$2` the name.
pub const FIND_RELATION: &str = "SELECT c.oid, n.nspname::text, c.relname::text, \
     pg_catalog.has_table_privilege(c.oid, 'SELECT') \
     FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') \
     AND CASE WHEN $1::text IS NULL THEN pg_catalog.pg_table_is_visible(c.oid) ELSE n.nspname = $1::text END \
     ORDER BY pg_catalog.pg_table_is_visible(c.oid) DESC LIMIT 1";

/// A relation's columns with their types. `$1` the relation's oid.
pub const RELATION_COLUMNS: &str = "SELECT a.attname::text, t.typname::text, t.typcategory::text, \
     coalesce(e.typcategory::text, '') \
     FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
     LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typcategory = 'A' \
     WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

/// The server's encoding: byte order equals code point order (the engine's id order) in UTF8 and
/// SQL_ASCII databases.
pub const SERVER_ENCODING: &str = "SELECT pg_catalog.current_setting('server_encoding')";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::cmp_ids;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn column(name: &str, type_name: &str, category: &str, element: &str) -> CatalogColumn {
        CatalogColumn {
            name: name.into(),
            type_name: type_name.into(),
            category: category.into(),
            element_category: element.into(),
        }
    }

    fn relation(columns: Vec<CatalogColumn>) -> CatalogRelation {
        CatalogRelation {
            schema: "public".into(),
            name: "talkdesk_contacts".into(),
            can_select: true,
            columns,
        }
    }

    fn minimal_contacts() -> Vec<CatalogColumn> {
        vec![
            column("id", "text", "S", ""),
            column("updated_at", "timestamptz", "D", ""),
            column("name", "varchar", "S", ""),
        ]
    }

    #[test]
    fn sort_keys_order_ids_exactly_as_the_engine_does() {
        let fixed = [
            "",
            "0",
            "00",
            "000",
            "7",
            "007",
            "07",
            "10",
            "9",
            "100",
            "0010",
            "a",
            "A",
            "B",
            "b",
            "a-1",
            "a1",
            "10a",
            "-1",
            "+1",
            " 1",
            "1 ",
            "é",
            "e",
            "z",
            "Z",
            "١٢",
            "１２",
            "\u{10FFFF}",
            "9".repeat(38).as_str(),
            "9".repeat(39).as_str(),
            "1".repeat(38).as_str(),
            "0".repeat(40).as_str(),
        ]
        .map(String::from);
        let mut rng = StdRng::seed_from_u64(12);
        let alphabet: Vec<char> = "0123456789aAzZ-_. é١\u{1F600}".chars().collect();
        let mut ids: Vec<String> = fixed.to_vec();
        for _ in 0..3000 {
            let len = rng.random_range(0..=42);
            let digits_only = rng.random_bool(0.5);
            let id: String = (0..len)
                .map(|_| {
                    if digits_only {
                        char::from(b'0' + rng.random_range(0..10u8))
                    } else {
                        alphabet[rng.random_range(0..alphabet.len())]
                    }
                })
                .collect();
            ids.push(id);
        }
        for a in &ids {
            for b in ids.iter().step_by(7) {
                assert_eq!(cmp_sort_keys(a, b), cmp_ids(a, b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn the_sql_sort_key_and_the_readme_index_are_the_same_expression() {
        let unquoted = SORT_KEY_SQL.replace("\"id\"", "id");
        assert_eq!(format!("(updated_at, {unquoted})"), SORT_KEY_INDEX);
    }

    #[test]
    fn page_statements_bind_every_value_and_order_by_the_sort_key() {
        let stmts = statements(&relation(minimal_contacts()), &{
            let mut r = relation(vec![
                column("id", "text", "S", ""),
                column("contact_id", "text", "S", ""),
                column("type", "text", "S", ""),
                column("date", "timestamptz", "D", ""),
            ]);
            r.name = "talkdesk_interactions".into();
            r
        })
        .unwrap();
        let keyset = stmts.contacts(Lower::Keyset);
        assert!(keyset.contains(&format!("(\"updated_at\", {SORT_KEY_SQL}) > ($1, $2)")), "{keyset}");
        assert!(keyset.contains("\"updated_at\" <= $3") && keyset.ends_with("LIMIT $4"), "{keyset}");
        assert!(keyset.contains(&format!("ORDER BY \"updated_at\", {SORT_KEY_SQL}")), "{keyset}");
        assert!(keyset.contains("FROM \"public\".\"talkdesk_contacts\""), "{keyset}");
        assert!(stmts.contacts(Lower::None).ends_with("LIMIT $2"));
        assert!(stmts.contacts(Lower::Instant).contains("\"updated_at\" >= $1"));
        assert_eq!(stmts.people_by_emails, None, "no emails column, no email lookup");
        assert!(keyset.contains("NULL::text[]") && keyset.contains("\"name\"::text"), "{keyset}");
    }

    #[test]
    fn missing_and_mistyped_columns_are_named() {
        let mut cols = minimal_contacts();
        cols.retain(|c| c.name != "updated_at");
        let err = select_list(&relation(cols), CONTACT_FIELDS).unwrap_err().to_string();
        assert!(err.contains("`updated_at`") && err.contains("timestamptz"), "{err}");

        let mut cols = minimal_contacts();
        cols[1] = column("updated_at", "timestamp", "D", "");
        let err = select_list(&relation(cols), CONTACT_FIELDS).unwrap_err().to_string();
        assert!(err.contains("is timestamp; expected timestamptz"), "{err}");

        let mut cols = minimal_contacts();
        cols.push(column("emails", "text", "S", ""));
        let err = select_list(&relation(cols), CONTACT_FIELDS).unwrap_err().to_string();
        assert!(err.contains("`emails`") && err.contains("text[]"), "{err}");

        let mut cols = minimal_contacts();
        cols[0] = column("id", "int8", "N", "");
        let err = select_list(&relation(cols), CONTACT_FIELDS).unwrap_err().to_string();
        assert!(err.contains("`id`") && err.contains("is int8"), "{err}");
    }

    #[test]
    fn relation_names_with_quotes_stay_one_identifier_in_sql() {
        let mut r = relation(minimal_contacts());
        r.schema = "we\"ird".into();
        r.name = "x\"; DROP TABLE y; --".into();
        assert_eq!(r.quoted(), "\"we\"\"ird\".\"x\"\"; DROP TABLE y; --\"");
    }
}
