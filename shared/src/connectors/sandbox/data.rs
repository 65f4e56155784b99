//! The sandbox's data: generated deterministically, or read from a JSON file of the same shape
//! (`SANDBOX_DATA=path`).

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};

use crate::talkdesk::{Agent, Contact, Interaction, Priority, Status};

/// A contact as the sandbox stores it: the Talkdesk contact plus when it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxContact {
    pub updated_at: DateTime<Utc>,
    #[serde(flatten)]
    pub contact: Contact,
}

/// An interaction and the contact it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxInteraction {
    pub contact_id: String,
    #[serde(flatten)]
    pub interaction: Interaction,
}

/// The whole data set; also the shape of a `SANDBOX_DATA` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxData {
    pub contacts: Vec<SandboxContact>,
    #[serde(default)]
    pub interactions: Vec<SandboxInteraction>,
    /// The agents `POST /agents` lists (none when a data file has no `agents`).
    #[serde(default)]
    pub agents: Vec<Agent>,
}

/// How much data to generate.
#[derive(Debug, Clone, Copy)]
pub struct GenerateOptions {
    pub contacts: usize,
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            contacts: 2_500,
            seed: 0x7a1c_de5c,
        }
    }
}

/// The interaction types the sandbox has.
pub const INTERACTION_TYPES: &[&str] = &["ticket", "call", "email", "chat"];

/// Base URL of the sandbox's pretend agent UI.
pub const SANDBOX_URL: &str = "https://sandbox.example.com";

/// SplitMix64: small, fast and the same everywhere, so the data is the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n).map(|_| char::from(b'0' + self.below(10) as u8)).collect()
    }
}

const FIRST: &[&str] = &[
    "Jane", "John", "Maria", "José", "Ana", "Luís", "Emma", "Liam", "Olivia", "Noah", "Sofia", "Mateo", "Aarav", "Priya", "Wei", "Mei",
    "Yuki", "Haruto", "Fatima", "Omar", "Chloé", "Lucas", "Hannah", "Jonas", "Ingrid", "Lars", "Amara", "Kwame", "Isabella", "Diego",
    "Zoë", "Niamh", "Seán", "Ravi", "Ananya", "Kenji", "Léa", "Mohammed", "Elena", "Dmitri", "Aisha", "Tomás", "Inês", "Beatriz",
];
const LAST: &[&str] = &[
    "Doe",
    "Smith",
    "Silva",
    "Santos",
    "García",
    "Müller",
    "Schmidt",
    "Dubois",
    "Martin",
    "Rossi",
    "Kowalski",
    "Nguyen",
    "Tanaka",
    "Sato",
    "Kim",
    "Patel",
    "Sharma",
    "Chen",
    "Wang",
    "O'Brien",
    "Murphy",
    "Johansson",
    "Andersen",
    "Okafor",
    "Mensah",
    "Hernández",
    "López",
    "Costa",
    "Pereira",
    "Ferreira",
    "Novak",
    "Ivanova",
    "Haddad",
    "Cohen",
    "Fischer",
    "Bernard",
    "Moreau",
    "Walsh",
];
const COMPANIES: &[&str] = &[
    "Northwind Traders",
    "Contoso Ltd.",
    "Fabrikam Inc.",
    "Acme Corporation",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Biotech",
    "Tyrell Systems",
    "Cyberdyne Analytics",
    "Soylent Foods",
    "Hooli",
    "Pied Piper",
    "Vandelay Industries",
    "Wonka Confectionery",
    "Oceanic Airlines",
    "Blue Sun Energy",
    "Aperture Labs",
    "Monarch Solutions",
    "Lusitania Seguros",
    "Rheinland Maschinenbau",
    "Maison Lumière",
    "Sakura Electronics",
    "Bharat Fintech",
    "Andes Mining",
    "Nordlys Shipping",
];
const TITLES: &[&str] = &[
    "CTO",
    "CEO",
    "VP Sales",
    "Head of Support",
    "Support Engineer",
    "Account Executive",
    "Procurement Manager",
    "Office Manager",
    "Customer Success Manager",
    "Software Engineer",
    "Operations Director",
    "Finance Controller",
    "Marketing Lead",
    "IT Administrator",
    "Product Manager",
    "Founder",
    "Purchasing Agent",
    "Logistics Coordinator",
    "Head of Customer Care",
    "Staff",
];
const CITIES: &[(&str, &str)] = &[
    ("37 Famous St., New York, NY 10001", "US"),
    ("1 Market St., San Francisco, CA 94105", "US"),
    ("221B Baker Street, London NW1 6XE", "GB"),
    ("Friedrichstraße 43, 10117 Berlin", "DE"),
    ("12 Rue de Rivoli, 75004 Paris", "FR"),
    ("Av. da Liberdade 110, 1250-146 Lisboa", "PT"),
    ("Rua Augusta 1500, São Paulo - SP, 01304-001", "BR"),
    ("Calle de Alcalá 50, 28014 Madrid", "ES"),
    ("MG Road 14, Bengaluru 560001", "IN"),
    ("200 George St, Sydney NSW 2000", "AU"),
    ("1-1 Marunouchi, Chiyoda-ku, Tokyo 100-0005", "JP"),
];

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = match c {
            'á' | 'à' | 'ã' | 'â' => 'a',
            'é' | 'è' | 'ê' => 'e',
            'í' => 'i',
            'ó' | 'ô' => 'o',
            'ú' | 'ü' => 'u',
            'ç' => 'c',
            'ß' => 's',
            c => c.to_ascii_lowercase(),
        };
        if c.is_ascii_alphanumeric() {
            out.push(c);
        }
    }
    out
}

fn phone(rng: &mut Rng) -> String {
    match rng.below(11) {
        0 => format!("(212) 555-{}", rng.digits(4)),
        1 => format!("+1 415 555 {}", rng.digits(4)),
        2 => format!("+44 20 7946 0{}", rng.digits(3)),
        3 => format!("+49 30 {} {}", rng.digits(4), rng.digits(4)),
        4 => format!("+33 1 {} {} {} {}", rng.digits(2), rng.digits(2), rng.digits(2), rng.digits(2)),
        5 => format!("+351 21 {} {}", rng.digits(3), rng.digits(4)),
        6 => format!("+55 11 9{}-{}", rng.digits(4), rng.digits(4)),
        7 => format!("+34 91 {} {} {}", rng.digits(3), rng.digits(2), rng.digits(2)),
        8 => format!("+91 98{} {}", rng.digits(3), rng.digits(5)),
        9 => format!("+61 2 {} {}", rng.digits(4), rng.digits(4)),
        _ => format!("+81 3-{}-{}", rng.digits(4), rng.digits(4)),
    }
}

const SUBJECTS: &[&str] = &[
    "Cannot log in to the portal",
    "Invoice {n} is wrong",
    "Delivery delayed for order {n}",
    "Request for a quote",
    "Refund for order {n}",
    "Upgrade our plan",
    "Password reset not arriving",
    "Integration returns an error",
    "Follow-up on renewal",
    "Question about contract {n}",
    "Damaged item in shipment {n}",
    "Change billing address",
    "Onboarding call",
    "Feature request: export to CSV",
    "Outage report",
];

/// Generates the default sandbox: `options.contacts` contacts (groups of them share one `updated_at`) over
/// about two years, and about five interactions each over the two years before November 2026.
pub fn generate(options: GenerateOptions) -> SandboxData {
    let mut rng = Rng(options.seed);
    let n = options.contacts;
    // Ids are a shuffled range, so id order and time order differ.
    let mut ids: Vec<u64> = (0..n as u64).map(|i| 100_001 + i).collect();
    for i in (1..ids.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        ids.swap(i, j);
    }
    let start = Utc.with_ymd_and_hms(2024, 11, 1, 9, 0, 0).single().unwrap_or_default();
    let mut at = start;
    let mut tie_left = 0;
    let mut contacts = Vec::with_capacity(n);
    for (i, id) in ids.iter().enumerate() {
        if tie_left == 0 {
            at += Duration::seconds(1 + rng.below(12 * 3600) as i64);
            if i % 40 == 0 {
                // A group of 2 to 6 contacts changed in the same second (an import, a bulk edit).
                tie_left = 1 + rng.below(5);
            }
        } else {
            tie_left -= 1;
        }
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let company = rng.pick(COMPANIES);
        let domain = format!("{}.example.com", slug(company));
        let mut emails = vec![format!("{}.{}@{}", slug(first), slug(last), domain)];
        if rng.chance(45) {
            emails.push(format!("{}{}@example.org", slug(first), rng.below(1000)));
        }
        if rng.chance(15) {
            emails.push(format!("{}.{}@example.net", slug(last), slug(first)));
        }
        let phones: Vec<String> = (0..1 + rng.below(3)).map(|_| phone(&mut rng)).collect();
        let (address, _) = CITIES[rng.below(CITIES.len() as u64) as usize];
        let contact = Contact {
            id: id.to_string(),
            name: format!("{first} {last}"),
            company: rng.chance(90).then(|| company.to_string()),
            title: rng.chance(80).then(|| rng.pick(TITLES).to_string()),
            emails,
            phones,
            photo_url: rng.chance(70).then(|| format!("{SANDBOX_URL}/photos/{id}.jpg")),
            address: rng.chance(75).then(|| address.to_string()),
            websites: if rng.chance(50) {
                vec![format!("https://www.{domain}")]
            } else {
                vec![]
            },
            twitter: rng.chance(40).then(|| format!("{}_{}", slug(first), slug(last))),
            url: Some(format!("{SANDBOX_URL}/contacts/{id}")),
        };
        contacts.push(SandboxContact {
            updated_at: at,
            contact: contact.tidy(),
        });
    }

    let window_start = Utc.with_ymd_and_hms(2024, 11, 1, 0, 0, 0).single().unwrap_or_default();
    let window_secs = 2 * 365 * 24 * 3600;
    let mut interactions = Vec::new();
    let mut next_id = 5_000_001u64;
    for c in &contacts {
        for _ in 0..rng.below(11) {
            let kind = INTERACTION_TYPES[rng.below(INTERACTION_TYPES.len() as u64) as usize];
            let subject = rng.pick(SUBJECTS).replace("{n}", &rng.digits(6));
            let date = window_start + Duration::seconds(rng.below(window_secs) as i64);
            let id = next_id.to_string();
            next_id += 1;
            interactions.push(SandboxInteraction {
                contact_id: c.contact.id.clone(),
                interaction: Interaction {
                    id: id.clone(),
                    subject: subject.clone(),
                    description: format!("{} wrote about \"{subject}\" by {kind}.", c.contact.name),
                    date,
                    url: format!("{SANDBOX_URL}/{kind}s/{id}"),
                    kind: kind.to_string(),
                    priority: Priority::ALL[rng.below(5) as usize],
                    status: Status::ALL[rng.below(5) as usize],
                },
            });
        }
    }
    let agents = (0..AGENTS)
        .map(|i| {
            let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
            Agent {
                id: (9_001 + i).to_string(),
                name: format!("{first} {last}"),
                email: format!("{}.{}.{}@agents.sandbox.example.com", slug(first), slug(last), 9_001 + i),
            }
        })
        .collect();
    SandboxData {
        contacts,
        interactions,
        agents,
    }
}

/// Agents the generated sandbox has.
pub const AGENTS: usize = 36;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn generated_data_is_deterministic_and_as_rich_as_promised() {
        let data = generate(GenerateOptions::default());
        assert_eq!(data, generate(GenerateOptions::default()));
        assert!(data.contacts.len() >= 2_000);
        assert!(data.interactions.len() >= 10_000, "{}", data.interactions.len());
        let mut by_ts: HashMap<DateTime<Utc>, usize> = HashMap::new();
        for c in &data.contacts {
            *by_ts.entry(c.updated_at).or_default() += 1;
        }
        assert!(by_ts.values().filter(|n| **n > 1).count() >= 50);
        for p in Priority::ALL {
            assert!(data.interactions.iter().any(|i| i.interaction.priority == p));
        }
        for s in Status::ALL {
            assert!(data.interactions.iter().any(|i| i.interaction.status == s));
        }
        let first = data.interactions.iter().map(|i| i.interaction.date).min().unwrap();
        let last = data.interactions.iter().map(|i| i.interaction.date).max().unwrap();
        assert!(last - first > Duration::days(700));
        let countries: std::collections::HashSet<&str> = data
            .contacts
            .iter()
            .flat_map(|c| c.contact.phones.iter())
            .map(|p| p.split(' ').next().unwrap_or(""))
            .collect();
        assert!(countries.len() >= 8);
        let filled = data
            .contacts
            .iter()
            .filter(|c| c.contact.company.is_some() && c.contact.title.is_some())
            .count();
        assert!(filled * 2 > data.contacts.len());
    }

    #[test]
    fn a_data_file_has_the_same_shape() {
        let data = generate(GenerateOptions { contacts: 3, seed: 1 });
        let json = serde_json::to_string(&data).unwrap();
        let back: SandboxData = serde_json::from_str(&json).unwrap();
        assert_eq!(back, data);
    }
}
