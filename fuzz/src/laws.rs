//! Laws a requirement check must obey, stated without its code: groups are alternatives,
//! conditions in a group conjunctions, and for a fact the host knows and can read, each
//! operator and its opposite disagree (and exactly one of `<`, `=`, `>` holds). An unknown fact
//! satisfies every condition; an unreadable host version none.

use gpuhook::request::{
    parse_version, Condition, HostFacts, Operator, Requirement, RequirementKey,
};

fn single(requirement: &Requirement, groups: Vec<Vec<Condition>>) -> Requirement {
    Requirement {
        name: requirement.name.clone(),
        text: requirement.text.clone(),
        groups,
    }
}

fn holds(requirement: &Requirement, condition: &Condition, facts: &HostFacts) -> bool {
    single(requirement, vec![vec![condition.clone()]])
        .check(facts)
        .is_ok()
}

fn with_op(condition: &Condition, op: Operator) -> Condition {
    Condition {
        op,
        ..condition.clone()
    }
}

fn opposite(op: Operator) -> Operator {
    match op {
        Operator::Eq => Operator::Ne,
        Operator::Ne => Operator::Eq,
        Operator::Lt => Operator::Ge,
        Operator::Ge => Operator::Lt,
        Operator::Gt => Operator::Le,
        Operator::Le => Operator::Gt,
    }
}

/// Checks every law for `requirement` on `facts`; panics naming the one broken.
pub fn check_requirement(requirement: &Requirement, facts: &HostFacts) {
    let whole = requirement.check(facts).is_ok();
    let any_group = requirement.groups.is_empty()
        || requirement
            .groups
            .iter()
            .any(|g| single(requirement, vec![g.clone()]).check(facts).is_ok());
    assert_eq!(
        whole, any_group,
        "groups are alternatives: {requirement:?} on {facts:?}"
    );
    if let Err(failed) = requirement.check(facts) {
        assert!(
            !holds(requirement, failed, facts),
            "the reported condition fails"
        );
    }
    for group in &requirement.groups {
        let all = group.iter().all(|c| holds(requirement, c, facts));
        let together = single(requirement, vec![group.clone()])
            .check(facts)
            .is_ok();
        assert_eq!(all, together, "a group is a conjunction: {group:?}");
        for condition in group {
            check_condition(requirement, condition, facts);
        }
    }
}

fn check_condition(requirement: &Requirement, condition: &Condition, facts: &HostFacts) {
    let host = match condition.key {
        RequirementKey::Cuda => &facts.cuda,
        RequirementKey::Driver => &facts.driver,
        RequirementKey::Arch => &facts.arch,
        RequirementKey::Brand => &facts.brand,
    };
    let this = holds(requirement, condition, facts);
    let other = holds(
        requirement,
        &with_op(condition, opposite(condition.op)),
        facts,
    );
    let Some(host) = host else {
        assert!(
            this && other,
            "an unknown fact contradicts nothing: {condition}"
        );
        return;
    };
    let readable = condition.key == RequirementKey::Brand || parse_version(host).is_some();
    if !readable {
        assert!(
            !this && !other,
            "an unreadable host version proves nothing: {condition}"
        );
        return;
    }
    assert_ne!(this, other, "{condition} and its opposite on {host:?}");
    let exactly_one = [Operator::Lt, Operator::Eq, Operator::Gt]
        .into_iter()
        .filter(|op| holds(requirement, &with_op(condition, *op), facts))
        .count();
    assert_eq!(exactly_one, 1, "one of <, =, > for {condition} on {host:?}");
}
