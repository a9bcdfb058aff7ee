//! The enforcement plan: what the data plane must do to every byte it releases under a permitted
//! policy, as plain data. The engine turns it into a rewrite of the DataFusion plan; nothing here
//! is SQL text, so no value from a policy is ever spliced into a query.
//!
//! A plan is compiled from the permissions that granted a request. When several granted it, their
//! plans are merged so that every release satisfies all of them (union of column treatments, the
//! smallest budgets, the earliest expiry): the conservative reading, since the node cannot know
//! under which one the consumer means to act.

use super::model::{Constraint, LogicalOperator, Operator, Policy, RightOperand, Rule, Value};
use super::values::{self, Typed, XsdDuration};
use super::vocab::{AGORA, compact, odrl};
use super::{PolicyError, Problem, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What the data plane applies to releases under an agreement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct EnforcementPlan {
    /// The policy's uid.
    pub policy: String,
    /// The permissions the plan implements, for the audit trail ("the permission to use").
    pub permissions: Vec<String>,
    /// The columns that may be released, once the dataset's schema is known
    /// ([`EnforcementPlan::for_schema`]): every column but the dropped ones.
    pub allowed_columns: Option<Vec<String>>,
    /// Columns never released.
    pub dropped_columns: Vec<String>,
    /// Columns replaced by a keyed HMAC, the key specific to the agreement.
    pub pseudonymised_columns: Vec<String>,
    /// Columns whose precision is reduced.
    pub generalisations: Vec<Generalisation>,
    /// Conditions every released row satisfies (all of them; rows with a null are never released).
    pub row_filters: Vec<RowFilter>,
    /// Every group or cell of an aggregate result counts at least this many rows.
    pub min_group_size: Option<u64>,
    /// Most rows released under the agreement in all.
    pub row_budget: Option<u64>,
    /// Most bytes (encoded, as sent) released under the agreement in all.
    pub byte_budget: Option<u64>,
    /// Most pulls under the agreement.
    pub max_pulls: Option<u64>,
    /// No release before this instant.
    pub not_before: Option<Bound>,
    /// No release after this instant (from `dateTime` lt/lteq and `elapsedTime` from the agreement).
    pub expires: Option<Bound>,
    /// How long after the agreement releases may happen (`elapsedTime`).
    pub max_elapsed: Option<XsdDuration>,
    /// Whether every release carries the attribution (publisher and dataset), for `odrl:attribute`.
    pub attribution: bool,
    /// Whether the holder must approve each agreement before it is concluded
    /// (`agora:obtainApproval`, like an EHDS data permit).
    #[serde(default)]
    pub requires_approval: bool,
}

/// An instant bounding a window, and whether the instant itself is inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bound {
    /// The instant.
    pub at: DateTime<Utc>,
    /// Whether releases at exactly `at` are allowed.
    pub inclusive: bool,
}

/// A column released at reduced precision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generalisation {
    /// The column.
    pub column: String,
    /// To what.
    pub granularity: Granularity,
}

/// How far a value is generalised.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// Dates and timestamps truncated to the start of the year.
    Year,
    /// … of the month.
    Month,
    /// … of the day.
    Day,
    /// … of the hour.
    Hour,
    /// Latitudes or longitudes snapped to the south-west corner of a grid cell of this many
    /// decimal degrees.
    Grid {
        /// The cell size in decimal degrees.
        degrees: f64,
    },
}

impl Granularity {
    /// How coarse a time granularity is (larger is coarser); `None` for grids.
    fn time_rank(self) -> Option<u8> {
        match self {
            Self::Year => Some(4),
            Self::Month => Some(3),
            Self::Day => Some(2),
            Self::Hour => Some(1),
            Self::Grid { .. } => None,
        }
    }
}

/// Rows are released only when `column operator values` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowFilter {
    /// The column.
    pub column: String,
    /// The comparison.
    pub operator: FilterOperator,
    /// The value (one, or several for the set operators).
    pub values: Vec<ColumnValue>,
}

/// The comparisons a row filter may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOperator {
    /// Equal.
    Eq,
    /// Not equal.
    Neq,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lteq,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gteq,
    /// Equal to one of the values.
    IsAnyOf,
    /// Equal to none of the values.
    IsNoneOf,
}

/// A typed value a column is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "value", rename_all = "snake_case")]
pub enum ColumnValue {
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// An exact decimal, as written.
    Decimal(String),
    /// A floating-point number.
    Double(f64),
    /// A calendar date.
    Date(NaiveDate),
    /// An instant.
    Timestamp(DateTime<Utc>),
    /// Text.
    Text(String),
}

impl EnforcementPlan {
    /// The plan for a dataset with these columns: every column a duty names must exist (a policy
    /// naming another column is invalid for the dataset), and `allowed_columns` lists the
    /// columns released, in schema order.
    pub fn for_schema<S: AsRef<str>>(mut self, columns: &[S]) -> Result<Self> {
        let known: BTreeSet<&str> = columns.iter().map(AsRef::as_ref).collect();
        let named = self
            .dropped_columns
            .iter()
            .chain(&self.pseudonymised_columns)
            .chain(self.generalisations.iter().map(|g| &g.column))
            .chain(self.row_filters.iter().map(|f| &f.column));
        let mut problems: Vec<Problem> = named
            .filter(|column| !known.contains(column.as_str()))
            .map(|column| Problem {
                at: format!("policy <{}>", self.policy),
                term: Some(format!("agora:column \"{column}\"")),
                message: "not a column of the dataset".into(),
            })
            .collect();
        problems.dedup();
        if !problems.is_empty() {
            return Err(PolicyError::Unenforceable { problems });
        }
        self.allowed_columns = Some(
            columns
                .iter()
                .map(|c| c.as_ref().to_owned())
                .filter(|c| !self.dropped_columns.contains(c))
                .collect(),
        );
        Ok(self)
    }

    /// Whether releases are allowed at `now` (the time window and expiry).
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        let after_start = self
            .not_before
            .is_none_or(|b| now > b.at || (b.inclusive && now == b.at));
        let before_end = self
            .expires
            .is_none_or(|b| now < b.at || (b.inclusive && now == b.at));
        after_start && before_end
    }

    fn merge(&mut self, other: Self) {
        self.permissions.extend(other.permissions);
        extend_unique(&mut self.dropped_columns, other.dropped_columns);
        extend_unique(&mut self.pseudonymised_columns, other.pseudonymised_columns);
        for generalisation in other.generalisations {
            self.add_generalisation(generalisation);
        }
        for filter in other.row_filters {
            if !self.row_filters.contains(&filter) {
                self.row_filters.push(filter);
            }
        }
        self.min_group_size = max_opt(self.min_group_size, other.min_group_size);
        self.row_budget = min_opt(self.row_budget, other.row_budget);
        self.byte_budget = min_opt(self.byte_budget, other.byte_budget);
        self.max_pulls = min_opt(self.max_pulls, other.max_pulls);
        self.not_before = later(self.not_before, other.not_before);
        self.expires = earlier(self.expires, other.expires);
        self.max_elapsed = match (self.max_elapsed, other.max_elapsed) {
            (Some(a), Some(b)) => Some(
                if b.seconds + b.months as f64 * 2_629_746.0
                    < a.seconds + a.months as f64 * 2_629_746.0
                {
                    b
                } else {
                    a
                },
            ),
            (a, b) => a.or(b),
        };
        self.attribution |= other.attribution;
        self.requires_approval |= other.requires_approval;
    }

    /// Adds a generalisation, keeping the coarser one when a column is generalised twice.
    fn add_generalisation(&mut self, new: Generalisation) {
        match self
            .generalisations
            .iter_mut()
            .find(|g| g.column == new.column)
        {
            None => self.generalisations.push(new),
            Some(existing) => {
                let coarser = match (existing.granularity, new.granularity) {
                    (Granularity::Grid { degrees: a }, Granularity::Grid { degrees: b }) => {
                        Granularity::Grid { degrees: a.max(b) }
                    }
                    (a, b) => match (a.time_rank(), b.time_rank()) {
                        (Some(x), Some(y)) if y > x => b,
                        _ => a,
                    },
                };
                existing.granularity = coarser;
            }
        }
    }

    /// Sorted lists; transformations of dropped columns removed (the column is not released).
    fn normalise(mut self) -> Self {
        self.dropped_columns.sort();
        self.pseudonymised_columns
            .retain(|c| !self.dropped_columns.contains(c));
        self.pseudonymised_columns.sort();
        let dropped = self.dropped_columns.clone();
        self.generalisations
            .retain(|g| !dropped.contains(&g.column));
        self.generalisations.sort_by(|a, b| a.column.cmp(&b.column));
        self
    }
}

fn extend_unique(list: &mut Vec<String>, more: Vec<String>) {
    for item in more {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

fn min_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn max_opt(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

/// The tighter of two upper bounds.
fn earlier(a: Option<Bound>, b: Option<Bound>) -> Option<Bound> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.at < x.at || (y.at == x.at && !y.inclusive) {
            y
        } else {
            x
        }),
        (x, y) => x.or(y),
    }
}

/// The tighter of two lower bounds.
fn later(a: Option<Bound>, b: Option<Bound>) -> Option<Bound> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y.at > x.at || (y.at == x.at && !y.inclusive) {
            y
        } else {
            x
        }),
        (x, y) => x.or(y),
    }
}

/// The looser of two upper bounds.
fn looser_upper(a: Bound, b: Bound) -> Bound {
    if b.at > a.at || (b.at == a.at && b.inclusive) {
        b
    } else {
        a
    }
}

/// The looser of two lower bounds.
fn looser_lower(a: Bound, b: Bound) -> Bound {
    if b.at < a.at || (b.at == a.at && b.inclusive) {
        b
    } else {
        a
    }
}

/// Compiles the plan of the permissions at `indices` (into `policy.permissions`), merged.
/// `agreed_at` anchors `elapsedTime`.
pub(crate) fn compile(
    policy: &Policy,
    indices: &[usize],
    agreed_at: DateTime<Utc>,
) -> Result<EnforcementPlan> {
    compile_settled(policy, indices, agreed_at, &|_, _| false)
}

/// [`compile`], leaving out the duties `settled(permission, duty)` says need nothing from the
/// node (already fulfilled, or not in force): only a duty still to be carried out must be one
/// the node carries out itself.
pub(crate) fn compile_settled(
    policy: &Policy,
    indices: &[usize],
    agreed_at: DateTime<Utc>,
    settled: &dyn Fn(usize, usize) -> bool,
) -> Result<EnforcementPlan> {
    let mut merged: Option<EnforcementPlan> = None;
    let mut problems = Vec::new();
    for &index in indices {
        let Some(rule) = policy.permissions.get(index) else {
            return Err(PolicyError::Internal(format!(
                "no permission {index} in policy <{}>",
                policy.uid.as_str()
            )));
        };
        let mut compiler = Compiler {
            at: super::evaluate::rule_name(super::RuleKind::Permission, rule),
            plan: EnforcementPlan {
                policy: policy.uid.as_str().to_owned(),
                ..EnforcementPlan::default()
            },
            problems: Vec::new(),
        };
        compiler.permission(rule, agreed_at, &|duty| settled(index, duty));
        problems.append(&mut compiler.problems);
        let plan = compiler.plan;
        match &mut merged {
            None => merged = Some(plan),
            Some(existing) => existing.merge(plan),
        }
    }
    if !problems.is_empty() {
        return Err(PolicyError::Unenforceable { problems });
    }
    merged.map(EnforcementPlan::normalise).ok_or_else(|| {
        PolicyError::Internal("an enforcement plan needs at least one permission".into())
    })
}

struct Compiler {
    at: String,
    plan: EnforcementPlan,
    problems: Vec<Problem>,
}

/// A lower and an upper bound on the time.
type Window = (Option<Bound>, Option<Bound>);

impl Compiler {
    fn problem(&mut self, term: Option<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            at: self.at.clone(),
            term,
            message: message.into(),
        });
    }

    fn permission(
        &mut self,
        rule: &Rule,
        agreed_at: DateTime<Utc>,
        settled: &dyn Fn(usize) -> bool,
    ) {
        self.plan.permissions.push(self.at.clone());
        for constraint in &rule.constraints {
            self.release_constraint(constraint, agreed_at);
            let (lower, upper) = self.window(constraint);
            self.plan.not_before = later(self.plan.not_before, lower);
            self.plan.expires = earlier(self.plan.expires, upper);
        }
        for (index, duty) in rule.duties.iter().enumerate() {
            if !settled(index) {
                self.duty(duty);
            }
        }
    }

    /// The budgets, group size, pull count and elapsed time of a top-level constraint (also
    /// inside a top-level `and`).
    fn release_constraint(&mut self, constraint: &Constraint, agreed_at: DateTime<Utc>) {
        let atomic = match constraint {
            Constraint::Atomic(atomic) => atomic,
            Constraint::Logical(logical) => {
                if matches!(
                    logical.operator,
                    LogicalOperator::And | LogicalOperator::AndSequence
                ) {
                    for operand in &logical.operands {
                        self.release_constraint(operand, agreed_at);
                    }
                } else if logical.operands.iter().any(mentions_release_operand) {
                    self.problem(
                        Some(logical.operator.local_name().into()),
                        "release limits (agora:minGroupSize, agora:rowBudget, agora:byteBudget, count, elapsedTime) cannot be alternatives: the data plane needs one limit",
                    );
                }
                return;
            }
        };
        let left = atomic.left_operand.as_str();
        let term = Some(compact(left));
        let limit = |compiler: &mut Self| -> Option<u64> {
            match single(&atomic.right_operand).map(values::typed) {
                Some(Typed::Number { exact: Some(n), .. }) if n >= 0 => u64::try_from(n).ok(),
                _ => {
                    compiler.problem(
                        term.clone(),
                        "needs one non-negative integer as its right operand",
                    );
                    None
                }
            }
        };
        if left == format!("{AGORA}minGroupSize") {
            let Some(n) = limit(self) else { return };
            match atomic.operator {
                Operator::Gteq => {
                    self.plan.min_group_size = max_opt(self.plan.min_group_size, Some(n))
                }
                Operator::Gt => {
                    self.plan.min_group_size =
                        max_opt(self.plan.min_group_size, Some(n.saturating_add(1)));
                }
                other => self.problem(
                    term,
                    format!("takes gteq or gt, not {}", other.local_name()),
                ),
            }
        } else if left == format!("{AGORA}rowBudget")
            || left == format!("{AGORA}byteBudget")
            || left == odrl("count")
        {
            let Some(n) = limit(self) else { return };
            let cap = match atomic.operator {
                Operator::Lteq => n,
                Operator::Lt => n.saturating_sub(1),
                other => {
                    self.problem(
                        term,
                        format!("takes lteq or lt, not {}", other.local_name()),
                    );
                    return;
                }
            };
            let slot = if left == odrl("count") {
                &mut self.plan.max_pulls
            } else if left.ends_with("rowBudget") {
                &mut self.plan.row_budget
            } else {
                &mut self.plan.byte_budget
            };
            *slot = min_opt(*slot, Some(cap));
        } else if left == odrl("elapsedTime") {
            let duration = single(&atomic.right_operand).and_then(|v| match values::typed(v) {
                Typed::Duration(d) => Some(d),
                _ => XsdDuration::parse(v.lexical()),
            });
            let Some(duration) = duration else {
                self.problem(term, "needs an xsd:duration as its right operand");
                return;
            };
            match atomic.operator {
                Operator::Lt | Operator::Lteq => {
                    self.plan.max_elapsed = Some(duration);
                    match duration.after(agreed_at) {
                        Some(at) => {
                            let bound = Bound {
                                at,
                                inclusive: atomic.operator == Operator::Lteq,
                            };
                            self.plan.expires = earlier(self.plan.expires, Some(bound));
                        }
                        None => self.problem(term, "the duration is out of range"),
                    }
                }
                Operator::Gt | Operator::Gteq => {
                    if let Some(at) = duration.after(agreed_at) {
                        let bound = Bound {
                            at,
                            inclusive: atomic.operator == Operator::Gteq,
                        };
                        self.plan.not_before = later(self.plan.not_before, Some(bound));
                    }
                }
                other => self.problem(
                    term,
                    format!("takes lt, lteq, gt or gteq, not {}", other.local_name()),
                ),
            }
        }
    }

    /// The time window a constraint allows (`dateTime` comparisons; `and` intersects, `or` and
    /// `xone` take the hull of their operands' windows, when all of them bound it).
    fn window(&mut self, constraint: &Constraint) -> Window {
        match constraint {
            Constraint::Atomic(atomic) => {
                if atomic.left_operand.as_str() != odrl("dateTime") {
                    return (None, None);
                }
                let Some(value) = single(&atomic.right_operand) else {
                    return (None, None);
                };
                let bounds = match values::typed(value) {
                    Typed::Instant(at) => Some((at, at, true)),
                    Typed::Day(day) => Some((values::start_of(day), values::end_of(day), false)),
                    Typed::Text(text) => {
                        values::instant(&text).map(|at| (at, at, true)).or_else(|| {
                            values::day(&text)
                                .map(|d| (values::start_of(d), values::end_of(d), false))
                        })
                    }
                    _ => None,
                };
                let Some((start, end, instant)) = bounds else {
                    self.problem(
                        Some("odrl:dateTime".into()),
                        format!("{value} is not an xsd:dateTime or xsd:date"),
                    );
                    return (None, None);
                };
                // For a day, `start`..`end` is the day; for an instant both are the instant.
                match atomic.operator {
                    Operator::Lt => (
                        None,
                        Some(Bound {
                            at: start,
                            inclusive: false,
                        }),
                    ),
                    Operator::Lteq => (
                        None,
                        Some(Bound {
                            at: end,
                            inclusive: instant,
                        }),
                    ),
                    Operator::Gt => (
                        Some(Bound {
                            at: end,
                            inclusive: !instant,
                        }),
                        None,
                    ),
                    Operator::Gteq => (
                        Some(Bound {
                            at: start,
                            inclusive: true,
                        }),
                        None,
                    ),
                    Operator::Eq => (
                        Some(Bound {
                            at: start,
                            inclusive: true,
                        }),
                        Some(Bound {
                            at: end,
                            inclusive: instant,
                        }),
                    ),
                    _ => (None, None),
                }
            }
            Constraint::Logical(logical) => {
                let windows: Vec<Window> =
                    logical.operands.iter().map(|c| self.window(c)).collect();
                match logical.operator {
                    LogicalOperator::And | LogicalOperator::AndSequence => {
                        windows.into_iter().fold((None, None), |(lo, hi), (l, h)| {
                            (later(lo, l), earlier(hi, h))
                        })
                    }
                    LogicalOperator::Or | LogicalOperator::Xone => {
                        let lower = windows
                            .iter()
                            .map(|w| w.0)
                            .collect::<Option<Vec<Bound>>>()
                            .and_then(|b| b.into_iter().reduce(looser_lower));
                        let upper = windows
                            .iter()
                            .map(|w| w.1)
                            .collect::<Option<Vec<Bound>>>()
                            .and_then(|b| b.into_iter().reduce(looser_upper));
                        (lower, upper)
                    }
                }
            }
        }
    }

    fn duty(&mut self, duty: &Rule) {
        let Some(action) = &duty.action else {
            self.problem(None, "a duty without an action cannot be carried out");
            return;
        };
        let name = action.name.as_str();
        let term = Some(compact(name));
        if !duty.constraints.is_empty() || !duty.duties.is_empty() {
            self.problem(
                term.clone(),
                "the node carries out its duties on every release; a duty with constraints or consequences cannot be",
            );
        }
        let refinements = &action.refinements;
        let local = name.strip_prefix(AGORA);
        match local {
            Some("dropColumn") => {
                if let Some(columns) = self.columns(refinements, &term, false) {
                    self.refuse_others(refinements, &term, &[]);
                    extend_unique(&mut self.plan.dropped_columns, columns);
                }
            }
            Some("pseudonymise") => {
                if let Some(columns) = self.columns(refinements, &term, false) {
                    self.refuse_others(refinements, &term, &[]);
                    extend_unique(&mut self.plan.pseudonymised_columns, columns);
                }
            }
            Some("generalise") => self.generalise(refinements, &term),
            Some("filterRows") => self.filter_rows(refinements, &term),
            Some("obtainApproval") => {
                if !refinements.is_empty() {
                    self.problem(term, "the holder's approval takes no refinements");
                }
                self.plan.requires_approval = true;
            }
            _ if name == odrl("attribute") => {
                if !refinements.is_empty() {
                    self.problem(term, "attribution takes no refinements");
                }
                self.plan.attribution = true;
            }
            _ => self.problem(
                term,
                "the node cannot carry out this duty (it carries out agora:dropColumn, agora:pseudonymise, agora:generalise, agora:filterRows, agora:obtainApproval and odrl:attribute)",
            ),
        }
    }

    /// The columns an action is refined to (`agora:column eq "a"` or `isAnyOf ["a", "b"]`).
    fn columns(
        &mut self,
        refinements: &[Constraint],
        term: &Option<String>,
        one: bool,
    ) -> Option<Vec<String>> {
        let mut found = None;
        for refinement in refinements {
            let Constraint::Atomic(atomic) = refinement else {
                continue;
            };
            if atomic.left_operand.as_str() != format!("{AGORA}column") {
                continue;
            }
            if found.is_some() {
                self.problem(
                    term.clone(),
                    "names its columns in one agora:column refinement",
                );
                return None;
            }
            let names: Vec<String> = atomic
                .right_operand
                .values()
                .iter()
                .filter_map(|v| match v {
                    Value::Literal(l) if !l.value().trim().is_empty() => Some(l.value().to_owned()),
                    _ => None,
                })
                .collect();
            let valid_count = names.len() == atomic.right_operand.values().len();
            let ok = match atomic.operator {
                Operator::Eq => names.len() == 1,
                Operator::IsAnyOf if !one => !names.is_empty(),
                _ => false,
            };
            if !ok || !valid_count {
                self.problem(
                    term.clone(),
                    if one {
                        "agora:column must be eq one column name (a string)"
                    } else {
                        "agora:column must be eq one column name or isAnyOf several (strings)"
                    },
                );
                return None;
            }
            found = Some(names);
        }
        if found.is_none() {
            self.problem(
                term.clone(),
                "needs an agora:column refinement naming the column(s)",
            );
        }
        found
    }

    /// Refuses refinements other than `agora:column` and `allowed`.
    fn refuse_others(
        &mut self,
        refinements: &[Constraint],
        term: &Option<String>,
        allowed: &[&str],
    ) {
        for refinement in refinements {
            let left = match refinement {
                Constraint::Atomic(atomic) => atomic.left_operand.as_str(),
                Constraint::Logical(_) => {
                    self.problem(
                        term.clone(),
                        "data-plane refinements cannot be combined with and/or/xone",
                    );
                    continue;
                }
            };
            let name = left.strip_prefix(AGORA).unwrap_or("");
            if name != "column" && !allowed.contains(&name) {
                self.problem(
                    term.clone(),
                    format!("does not take the refinement {}", compact(left)),
                );
            }
        }
    }

    fn generalise(&mut self, refinements: &[Constraint], term: &Option<String>) {
        let Some(columns) = self.columns(refinements, term, false) else {
            return;
        };
        self.refuse_others(refinements, term, &["granularity", "gridSize"]);
        let mut granularity = None;
        for refinement in refinements {
            let Constraint::Atomic(atomic) = refinement else {
                continue;
            };
            let left = atomic.left_operand.as_str();
            let value = single(&atomic.right_operand);
            let parsed = if left == format!("{AGORA}granularity") {
                match (atomic.operator, value.map(Value::lexical)) {
                    (Operator::Eq, Some("year")) => Some(Granularity::Year),
                    (Operator::Eq, Some("month")) => Some(Granularity::Month),
                    (Operator::Eq, Some("day")) => Some(Granularity::Day),
                    (Operator::Eq, Some("hour")) => Some(Granularity::Hour),
                    _ => {
                        self.problem(
                            term.clone(),
                            "agora:granularity must be eq \"year\", \"month\", \"day\" or \"hour\"",
                        );
                        return;
                    }
                }
            } else if left == format!("{AGORA}gridSize") {
                match (atomic.operator, value.map(values::typed)) {
                    (Operator::Eq, Some(Typed::Number { approx, .. }))
                        if approx > 0.0 && approx <= 180.0 =>
                    {
                        Some(Granularity::Grid { degrees: approx })
                    }
                    _ => {
                        self.problem(
                            term.clone(),
                            "agora:gridSize must be eq a number of decimal degrees between 0 and 180",
                        );
                        return;
                    }
                }
            } else {
                None
            };
            if let Some(parsed) = parsed {
                if granularity.is_some() {
                    self.problem(
                        term.clone(),
                        "takes one agora:granularity or one agora:gridSize",
                    );
                    return;
                }
                granularity = Some(parsed);
            }
        }
        let Some(granularity) = granularity else {
            self.problem(
                term.clone(),
                "needs an agora:granularity or agora:gridSize refinement",
            );
            return;
        };
        for column in columns {
            self.plan.add_generalisation(Generalisation {
                column,
                granularity,
            });
        }
    }

    fn filter_rows(&mut self, refinements: &[Constraint], term: &Option<String>) {
        let Some(columns) = self.columns(refinements, term, true) else {
            return;
        };
        self.refuse_others(refinements, term, &["columnValue"]);
        let comparisons: Vec<_> = refinements
            .iter()
            .filter_map(|r| match r {
                Constraint::Atomic(a)
                    if a.left_operand.as_str() == format!("{AGORA}columnValue") =>
                {
                    Some(a)
                }
                _ => None,
            })
            .collect();
        let [comparison] = comparisons.as_slice() else {
            self.problem(
                term.clone(),
                "needs exactly one agora:columnValue refinement (the comparison)",
            );
            return;
        };
        let operator = match comparison.operator {
            Operator::Eq => FilterOperator::Eq,
            Operator::Neq => FilterOperator::Neq,
            Operator::Lt => FilterOperator::Lt,
            Operator::Lteq => FilterOperator::Lteq,
            Operator::Gt => FilterOperator::Gt,
            Operator::Gteq => FilterOperator::Gteq,
            Operator::IsAnyOf => FilterOperator::IsAnyOf,
            Operator::IsNoneOf => FilterOperator::IsNoneOf,
            other => {
                self.problem(
                    term.clone(),
                    format!("agora:columnValue cannot use {}", other.local_name()),
                );
                return;
            }
        };
        let values = comparison.right_operand.values();
        let set = matches!(operator, FilterOperator::IsAnyOf | FilterOperator::IsNoneOf);
        if values.is_empty() || (!set && values.len() != 1) {
            self.problem(
                term.clone(),
                "agora:columnValue compares with one value (several only with isAnyOf/isNoneOf)",
            );
            return;
        }
        let mut typed = Vec::new();
        for value in values {
            match column_value(value) {
                Some(v) => typed.push(v),
                None => {
                    self.problem(
                        term.clone(),
                        format!("{value} is not a boolean, number, date, timestamp or string"),
                    );
                    return;
                }
            }
        }
        for column in columns {
            let filter = RowFilter {
                column,
                operator,
                values: typed.clone(),
            };
            if !self.plan.row_filters.contains(&filter) {
                self.plan.row_filters.push(filter);
            }
        }
    }
}

/// The one value of a right operand.
fn single(right: &RightOperand) -> Option<&Value> {
    match right.values() {
        [one] => Some(one),
        _ => None,
    }
}

fn mentions_release_operand(constraint: &Constraint) -> bool {
    match constraint {
        Constraint::Atomic(atomic) => {
            let left = atomic.left_operand.as_str();
            ["minGroupSize", "rowBudget", "byteBudget"]
                .iter()
                .any(|n| left == format!("{AGORA}{n}"))
                || left == odrl("count")
                || left == odrl("elapsedTime")
        }
        Constraint::Logical(logical) => logical.operands.iter().any(mentions_release_operand),
    }
}

/// A right operand as a column value, by its datatype.
fn column_value(value: &Value) -> Option<ColumnValue> {
    let Value::Literal(literal) = value else {
        return None;
    };
    let datatype = literal.datatype().as_str();
    let name = datatype
        .strip_prefix("http://www.w3.org/2001/XMLSchema#")
        .unwrap_or("");
    let text = literal.value().trim();
    Some(match name {
        "boolean" => ColumnValue::Boolean(match text {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return None,
        }),
        "integer" | "int" | "long" | "short" | "byte" | "nonNegativeInteger"
        | "positiveInteger" | "nonPositiveInteger" | "negativeInteger" | "unsignedInt"
        | "unsignedShort" | "unsignedByte" => ColumnValue::Integer(text.parse().ok()?),
        "decimal" => {
            text.parse::<f64>().ok()?;
            ColumnValue::Decimal(text.to_owned())
        }
        "double" | "float" => {
            ColumnValue::Double(text.parse().ok().filter(|f: &f64| f.is_finite())?)
        }
        "date" => ColumnValue::Date(values::day(text)?),
        "dateTime" | "dateTimeStamp" => ColumnValue::Timestamp(values::instant(text)?),
        "string" | "normalizedString" | "token" | "" => {
            ColumnValue::Text(literal.value().to_owned())
        }
        _ if datatype == "http://www.w3.org/1999/02/22-rdf-syntax-ns#langString" => {
            ColumnValue::Text(literal.value().to_owned())
        }
        _ => return None,
    })
}
