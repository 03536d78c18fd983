#!/usr/bin/env python3
"""Checks Firebreak's CloudFormation templates for the findings of the
template security review: each check fails while its finding is open.

    .venv/bin/python tests/templates/check_templates.py [WORKSPACE_ROOT]

Prints `ok <n> checks` and exits 0, or lists every failure and exits 1.
`tests/templates.rs` runs it under `cargo test`.

The templates are parsed (CloudFormation's short-form tags included) and
resolved as CloudFormation would for a few parameter sets (defaults; every
option on; a long stack name; other partitions): conditions, Fn::If, Sub,
Join, Split and Refs are evaluated, a role's ARN is built from its path and
CloudFormation's naming (<stack>-<LogicalId>-<suffix>), and IAM's ARN globs
(* and ?, case-sensitive) are matched against the ARNs they must or must
not cover. Needs PyYAML only (in the project's venv).
"""

import copy
import json
import re
import sys
from pathlib import Path

import yaml

ACCOUNT = "111122223333"
MEMBER_ACCOUNT = "444455556666"
REGION = "eu-west-1"

# What Firebreak writes in IAM (H1-H4, M1) and in the records bucket (M4).
IAM_WRITES = {
    "iam:UpdateAccessKey",
    "iam:PutRolePolicy",
    "iam:DeleteRolePolicy",
    "iam:PutUserPolicy",
    "iam:DeleteUserPolicy",
}
# Each function role's IAM actions, exactly (H4).
_CONTAIN_IAM = {
    "iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:ListUserTags",
    "iam:GetUserPolicy", "iam:PutUserPolicy",
    "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:ListRoleTags",
}
IAM_ACTIONS = {
    "GuardDutyRole": _CONTAIN_IAM,
    "ManualRole": _CONTAIN_IAM,
    "ReleaseRole": {
        "iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:ListUserTags",
        "iam:GetUserPolicy", "iam:PutUserPolicy", "iam:DeleteUserPolicy",
        "iam:GetRolePolicy", "iam:PutRolePolicy", "iam:DeleteRolePolicy",
    },
    "AlarmRole": set(),
    "ExpirerRole": set(),
}
OWN_POLICY_NAMES = {"FirebreakRevokeOlderSessions", "FirebreakQuarantine"}
NACL_ACTIONS = {"ec2:DescribeNetworkAcls", "ec2:CreateNetworkAclEntry", "ec2:DeleteNetworkAclEntry"}
# What the emergency lockdown changes (L1-L3), and the resource each takes.
LOCKDOWN_WRITES = {
    "ecs:UpdateService": ":service/",
    "elasticloadbalancing:ModifyListener": ":listener/app/",
    "secretsmanager:RotateSecret": ":secret:",
    "lambda:InvokeFunction": ":function:",
}
# Which responder role may act through which member role (template-member.yaml's
# trusts and the responder's sts:AssumeRole grants, each on its own): a
# finding's role never reaches the lockdown or the undo, as at home.
MEMBER_ROLES = {
    "MemberRole": {"GuardDutyRole", "ManualRole"},
    "MemberLockdownRole": {"ManualRole"},
    "MemberReleaseRole": {"ReleaseRole"},
    "MemberNaclRole": {"AlarmRole", "ExpirerRole"},
}
# Each member role's name from the responder's MemberRoleName.
MEMBER_SUFFIX = {"MemberRole": "", "MemberLockdownRole": "-lockdown", "MemberReleaseRole": "-release", "MemberNaclRole": "-nacl"}
# The responder's role paths, and which member roles trust each.
HOME_PATHS = {
    "contain": {"MemberRole"},
    "manual": {"MemberRole", "MemberLockdownRole"},
    "release": {"MemberReleaseRole"},
    "nacl": {"MemberNaclRole"},
    "service": set(),
}
# The functions a finding (GuardDuty, Security Hub, a CloudWatch alarm) or the
# schedule triggers: their roles hold no lockdown and no undo, here or there.
FINDING_ROLES = ("GuardDutyRole", "AlarmRole", "ExpirerRole")
# What only a release does (H4).
UNDO = {"iam:DeleteRolePolicy", "iam:DeleteUserPolicy", "logs:DeleteRetentionPolicy"}
FUNCTIONS = {
    "AlarmFunction": "firebreak-alarm",
    "GuardDutyFunction": "firebreak-guardduty",
    "ManualFunction": "firebreak-manual",
    "ExpirerFunction": "firebreak-expirer",
    "ReleaseFunction": "firebreak-release",
}

# ------------------------------------------------------------------ parsing


class Loader(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
        return {suffix: value}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


Loader.add_multi_constructor("!", _tag)


def load(path):
    """The template with long-form intrinsics (Fn::X) spelled as short (X)."""

    def norm(x):
        if isinstance(x, dict):
            out = {}
            for k, v in x.items():
                key = k[4:] if isinstance(k, str) and k.startswith("Fn::") else k
                out[key] = norm(v)
            if "GetAtt" in out and len(out) == 1 and isinstance(out["GetAtt"], str):
                out["GetAtt"] = out["GetAtt"].split(".", 1)
            return out
        if isinstance(x, list):
            return [norm(v) for v in x]
        return x

    with open(path) as f:
        return norm(yaml.load(f, Loader=Loader))


# ---------------------------------------------------------------- resolving

NOVALUE = object()
FUNCS = {"Ref", "Sub", "GetAtt", "If", "Join", "Split", "Select", "Equals", "Not", "And", "Or", "Condition"}


class Stack:
    """A template resolved for one set of parameters in one account."""

    def __init__(self, template, params=None, stack="firebreak", account=ACCOUNT, partition="aws", region=REGION):
        self.t = template
        self.stack, self.account, self.partition, self.region = stack, account, partition, region
        self.params = {k: str(v.get("Default", "")) for k, v in template.get("Parameters", {}).items()}
        self.params.update(params or {})
        self.pseudo = {
            "AWS::AccountId": account,
            "AWS::Partition": partition,
            "AWS::Region": region,
            "AWS::StackName": stack,
            "AWS::URLSuffix": "amazonaws.com",
        }
        self.resources = template.get("Resources", {})
        self._conds = {}

    # -- conditions
    def cond(self, name):
        if name not in self._conds:
            self._conds[name] = bool(self.value(self.t["Conditions"][name]))
        return self._conds[name]

    # -- ARNs CloudFormation would give
    def role_arn(self, logical):
        props = self.resources[logical].get("Properties", {})
        path = self.value(props.get("Path", "/"))
        name = self.value(props["RoleName"]) if "RoleName" in props else f"{self.stack}-{logical}-1A2B3C4D5E6F"
        return f"arn:{self.partition}:iam::{self.account}:role{path}{name}"

    def getatt(self, logical, attr):
        r = self.resources.get(logical, {})
        typ = r.get("Type", "")
        if typ == "AWS::IAM::Role" and attr == "Arn":
            return self.role_arn(logical)
        if typ == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:{self.partition}:s3:::{self.value(r['Properties']['BucketName'])}"
        if typ == "AWS::SQS::Queue" and attr == "QueueName":
            return self.value(r["Properties"]["QueueName"])
        return f"<getatt:{logical}.{attr}>"

    def ref(self, name):
        if name == "AWS::NoValue":
            return NOVALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.params:
            return self.params[name]
        if name in self.resources:
            return f"<ref:{name}>"
        raise KeyError(f"Ref to unknown {name}")

    def sub(self, arg):
        text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self.value(v) for k, v in arg[1].items()})

        def one(m):
            key = m.group(1)
            if key.startswith("!"):
                return "${" + key[1:] + "}"
            if key in extra:
                return str(extra[key])
            if "." in key:
                return self.getatt(*key.split(".", 1))
            return str(self.ref(key))

        return re.sub(r"\$\{([^}]+)\}", one, text)

    def value(self, x):
        """x with every intrinsic evaluated (NOVALUE where it vanishes)."""
        if isinstance(x, dict):
            if len(x) == 1:
                (k, v), = x.items()
                if k in FUNCS:
                    return self.func(k, v)
            out = {}
            for k, v in x.items():
                r = self.value(v)
                if r is not NOVALUE:
                    out[k] = r
            return out
        if isinstance(x, list):
            return [r for r in (self.value(v) for v in x) if r is not NOVALUE]
        return x

    def func(self, k, v):
        if k == "Ref":
            return self.ref(v)
        if k == "Sub":
            return self.sub(v)
        if k == "GetAtt":
            return self.getatt(*v)
        if k == "If":
            return self.value(v[1] if self.cond(v[0]) else v[2])
        if k == "Condition":
            return self.cond(v)
        if k == "Join":
            assert isinstance(v[0], str), f"Fn::Join takes a literal delimiter, not {v[0]}"
            return v[0].join(str(p) for p in self.value(v[1]))
        if k == "Split":
            assert isinstance(v[0], str), "Fn::Split takes a literal delimiter"
            return self.value(v[1]).split(v[0])
        if k == "Select":
            return self.value(v[1])[int(self.value(v[0]))]
        if k == "Equals":
            a, b = self.value(v[0]), self.value(v[1])
            return str(a) == str(b)
        if k == "Not":
            return not self.value(v[0])
        if k == "And":
            return all(self.value(c) for c in v)
        if k == "Or":
            return any(self.value(c) for c in v)
        raise KeyError(k)

    # -- the resolved resources
    def exists(self, logical):
        c = self.resources[logical].get("Condition")
        return c is None or self.cond(c)

    def of_type(self, typ):
        return {k: r for k, r in self.resources.items() if r["Type"] == typ and self.exists(k)}

    def props(self, logical):
        return self.value(self.resources[logical].get("Properties", {}))

    def role_statements(self, logical):
        """A role's inline statements and those of its managed policies of this template."""
        p = self.props(logical)
        stmts = [s for pol in p.get("Policies", []) for s in listify(pol["PolicyDocument"]["Statement"])]
        for arn in p.get("ManagedPolicyArns", []):
            m = re.fullmatch(r"<ref:(\w+)>", arn)
            if m and self.resources[m.group(1)]["Type"] == "AWS::IAM::ManagedPolicy":
                stmts += listify(self.props(m.group(1))["PolicyDocument"]["Statement"])
        return stmts

    def function_env(self, logical):
        env = copy.deepcopy(self.t.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
        env.update(self.resources[logical]["Properties"].get("Environment", {}).get("Variables", {}))
        return self.value(env)


def listify(x):
    return x if isinstance(x, list) else [x]


def glob(pattern, text):
    """IAM's ARN match: * any run of characters, ? one character, case-sensitive."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, text, re.S) is not None


def actions_of(stmt):
    return set(listify(stmt.get("Action", [])))


def cond_keys(stmt):
    """{(operator, key lower-case): values} of a statement's condition."""
    out = {}
    for op, kv in (stmt.get("Condition") or {}).items():
        for k, v in kv.items():
            out[(op, k.lower())] = listify(v)
    return out


def covers(stmt, arn):
    return any(glob(r, arn) for r in listify(stmt.get("Resource", [])))


def denied(stmts, action, arn, unconditioned=True):
    """An explicit Deny of `action` on `arn` among stmts (without a condition, unless told)."""
    for s in stmts:
        if s.get("Effect") != "Deny" or (unconditioned and s.get("Condition")):
            continue
        if any(glob(a, action) for a in actions_of(s)) and covers(s, arn):
            return s
    return None


def allowed_actions(stmts):
    return {a for s in stmts if s.get("Effect") == "Allow" for a in actions_of(s)}


# ------------------------------------------------------------------- checks

FAILURES = []
CHECKS = []


def check(name):
    def wrap(f):
        CHECKS.append((name, f))
        return f

    return wrap


def fail(check_name, msg):
    FAILURES.append(f"{check_name}: {msg}")


def scenarios(root):
    """The templates resolved with defaults, with every option on, and with a long stack name."""
    main = load(root / "template.yaml")
    member = load(root / "template-member.yaml")
    region = load(root / "template-region.yaml")
    # A member role name outside the built-in firebreak-* pattern: its
    # protection must come from the path /firebreak/.
    on = {
        "MemberRoleName": "firebreak/incident-responder",
        "MemberAccounts": f"{MEMBER_ACCOUNT},777788889999",
        "LogGroups": "/app/auth,/app/api",
        "OnCallRoleArn": f"arn:aws:iam::{ACCOUNT}:role/oncall-responder",
        "ProtectedPrincipals": "payments-admin,*-owner",
        "CodeSigningProfileVersionArns": f"arn:aws:signer:{REGION}:{ACCOUNT}:/signing-profiles/firebreak/abc",
        "OperationsEmail": "secops@example.com",
        "NoticeSubscriberArns": f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/*/AWSReservedSSO_AdministratorAccess_*",
        "EvidenceBuckets": "app-uploads,app-exports",
        "EvidenceBucket": "acme-evidence",
    }
    member_on = {
        "ResponderAccountId": ACCOUNT,
        "MemberRoleName": "incident-responder",
        "LogGroups": "/app/auth",
        "OnCallRoleArn": f"arn:aws:iam::{ACCOUNT}:role/oncall-responder",
        "ProtectedPrincipals": "payments-admin,*-owner",
        "EvidenceBuckets": "member-uploads",
        "EvidenceBucket": "acme-evidence",
    }
    long_stack = "security-firebreak-production"  # 29: the member template's limit is 30
    return {
        "main": Stack(main),
        "main_on": Stack(main, on),
        "main_long": Stack(main, on, stack=long_stack),
        # The README's organisation set-up, against the member template's defaults.
        "main_member_default": Stack(main, dict(on, MemberRoleName="firebreak/firebreak-member")),
        "member": Stack(member, {"ResponderAccountId": ACCOUNT}, stack="firebreak-member", account=MEMBER_ACCOUNT),
        "member_on": Stack(member, member_on, stack="firebreak-member", account=MEMBER_ACCOUNT),
        "member_long": Stack(member, dict(member_on, ResponderStackName=long_stack), stack="fb-member", account=MEMBER_ACCOUNT),
        "region": Stack(region, {"HomeRegion": REGION}, stack="firebreak-region", region="us-east-1"),
        "templates": (main, member, region),
    }


def roles(st):
    return st.of_type("AWS::IAM::Role")


def all_role_statements(st):
    return {r: st.role_statements(r) for r in roles(st)}


@check("H1 CreateTags only on create, instances only with firebreak:incident")
def h1(S):
    name = "H1"
    for key in ("main_on", "member_on"):
        st = S[key]
        for role, stmts in all_role_statements(st).items():
            for s in stmts:
                if s.get("Effect") != "Allow" or not any(glob(a, "ec2:CreateTags") for a in actions_of(s)):
                    continue
                c = cond_keys(s)
                on_create = c.get(("StringEquals", "ec2:createaction"))
                keys = c.get(("ForAllValues:StringEquals", "aws:tagkeys"))
                if on_create and set(on_create) <= {"CreateSecurityGroup", "CreateSnapshot"}:
                    continue
                instances_only = all(":instance/" in r for r in listify(s["Resource"]))
                if keys and set(keys) <= {"firebreak:incident"} and c.get(("Null", "aws:tagkeys")) == ["false"] and instances_only:
                    continue
                fail(name, f"{key} {role}: CreateTags without ec2:CreateAction or tag-key limits: {json.dumps(s)}")


@check("H2 ModifyInstanceAttribute only for disableApiTermination")
def h2(S):
    name = "H2"
    for key in ("main_on", "member_on"):
        for role, stmts in all_role_statements(S[key]).items():
            for s in stmts:
                if s.get("Effect") != "Allow" or not any(glob(a, "ec2:ModifyInstanceAttribute") for a in actions_of(s)):
                    continue
                c = cond_keys(s)
                ok = False
                for (op, k), vals in c.items():
                    if not op.startswith("StringEquals"):
                        continue
                    if k == "ec2:attribute/disableapitermination" and {v.lower() for v in vals} <= {"true", "false"}:
                        ok = True
                    if k == "ec2:attribute" and {v.lower() for v in vals} == {"disableapitermination"}:
                        ok = True
                if not ok or actions_of(s) != {"ec2:ModifyInstanceAttribute"}:
                    fail(name, f"{key} {role}: ModifyInstanceAttribute not limited to disableApiTermination: {json.dumps(s)}")
                if not all(":instance/" in r for r in listify(s["Resource"])):
                    fail(name, f"{key} {role}: ModifyInstanceAttribute on more than instances: {s['Resource']}")


def firebreak_role_arns(S, account, main_key="main_on", member_key="member_on"):
    """Every Firebreak role of both templates as it would be named in `account`."""
    out = {}
    for st in (S[main_key], S[member_key]):
        for r in roles(st):
            out[r + "@" + st.t["Description"][:20]] = re.sub(r"iam::\d+:", f"iam::{account}:", st.role_arn(r))
    return out


@check("H3 every role under /firebreak/; both templates protect both templates' roles")
def h3_protect(S):
    name = "H3"
    for key in ("main", "member", "region"):
        for r in roles(S[key]):
            path = S[key].props(r).get("Path", "/")
            if not path.startswith("/firebreak/"):
                fail(name, f"{key} role {r} has path {path}, not under /firebreak/")
    for main_key, member_key in (("main_on", "member_on"), ("main_long", "member_long"), ("main_member_default", "member")):
        for key, account in ((main_key, ACCOUNT), (member_key, MEMBER_ACCOUNT)):
            st = S[key]
            targets = firebreak_role_arns(S, account, main_key, member_key)
            for role, stmts in all_role_statements(st).items():
                writes = {a for a in allowed_actions(stmts) if a in IAM_WRITES}
                for action in writes | ({"iam:PutRolePolicy"} if writes else set()):
                    for label, arn in targets.items():
                        if not denied(stmts, action, arn):
                            fail(name, f"{key} {role} may {action} on Firebreak's role {label} ({arn})")


@check("H3 no AssumeRole into the responder's own account")
def h3_home(S):
    name = "H3"
    for key in ("main", "main_on", "main_long"):
        st = S[key]
        for role, stmts in all_role_statements(st).items():
            if "sts:AssumeRole" not in allowed_actions(stmts):
                continue
            for arn in (f"arn:aws:iam::{ACCOUNT}:role/firebreak/firebreak-member", f"arn:aws:iam::{ACCOUNT}:role/Admin"):
                if not denied(stmts, "sts:AssumeRole", arn):
                    fail(name, f"{key} {role} may assume {arn} in its own account")
    # The member template creates nothing in the security account.
    sec = Stack(S["templates"][1], {"ResponderAccountId": ACCOUNT}, account=ACCOUNT)
    if roles(sec):
        fail(name, f"template-member.yaml creates roles in the security account: {sorted(roles(sec))}")


def trust_patterns(member, mrole):
    """A member role's one trust statement and its aws:PrincipalArn patterns (or a reason it has none)."""
    trust = listify(member.props(mrole)["AssumeRolePolicyDocument"]["Statement"])
    if len(trust) != 1 or trust[0].get("Effect") != "Allow" or trust[0].get("Action") != "sts:AssumeRole":
        return None, f"one Allow sts:AssumeRole statement expected: {trust}"
    return trust[0], listify((trust[0].get("Condition") or {}).get("ArnLike", {}).get("aws:PrincipalArn", []))


def trusted_by(member, mrole, arn):
    t, pats = trust_patterns(member, mrole)
    return t is not None and any(glob(p, arn) for p in pats)


def may_assume(stmts, arn, account):
    """An Allow of sts:AssumeRole on `arn` (its aws:ResourceAccount condition, if any, holding `account`)."""
    for s in stmts:
        if s.get("Effect") != "Allow" or not any(glob(a, "sts:AssumeRole") for a in actions_of(s)) or not covers(s, arn):
            continue
        c = s.get("Condition") or {}
        if set(c) - {"StringEquals"} or set(c.get("StringEquals", {})) - {"aws:ResourceAccount"}:
            continue  # a condition this check does not read: not counted as a grant
        if account in listify(c.get("StringEquals", {}).get("aws:ResourceAccount", account)):
            return True
    return False


@check("M3 each member role trusts exactly its responder paths, and each responder role may assume exactly its member roles")
def m3(S):
    name = "M3"
    for main_key, member_key in (("main_on", "member_on"), ("main_long", "member_long"), ("main_member_default", "member")):
        main, member = S[main_key], S[member_key]
        arns = {r: main.role_arn(r) for r in roles(main)}
        if set(roles(member)) != set(MEMBER_ROLES):
            fail(name, f"{member_key}: member roles {sorted(roles(member))}, expected {sorted(MEMBER_ROLES)}")
        oncall = member.params["OnCallRoleArn"]
        stack = member.params["ResponderStackName"]
        for mrole, trusted in MEMBER_ROLES.items():
            if mrole not in roles(member):
                continue
            t, pats = trust_patterns(member, mrole)
            if t is None:
                fail(name, f"{member_key} {mrole}: {pats}")
                continue
            if t.get("Principal") != {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}:
                fail(name, f"{member_key} {mrole}: trusts {t.get('Principal')}, not the security account")
            if (t.get("Condition") or {}).get("StringLike") != {"sts:RoleSessionName": "firebreak-*"}:
                fail(name, f"{member_key} {mrole}: session names not limited to firebreak-*")
            for p in pats:
                if p == oncall and oncall and mrole != "MemberNaclRole":
                    continue  # the on-call CLI runs containment, lockdowns and releases itself
                if not p.startswith(f"arn:aws:iam::{ACCOUNT}:role/firebreak/"):
                    fail(name, f"{member_key} {mrole}: trusts {p}, outside the path /firebreak/")
            # The responder's roles as deployed ...
            for r, arn in arns.items():
                hit = any(glob(p, arn) for p in pats)
                if hit != (r in trusted):
                    fail(name, f"{member_key} {mrole}: {'trusts' if hit else 'does not trust'} {r} ({arn})")
            # ... and any role under each path (the GuardDuty role's contain/
            # never reaches the lockdown or the release role).
            for path, members in HOME_PATHS.items():
                for who in (f"{stack}-AnyRole-XYZ", f"{stack}-GuardDutyRole-1A2B"):
                    arn = f"arn:aws:iam::{ACCOUNT}:role/firebreak/{path}/{who}"
                    hit = any(glob(p, arn) for p in pats)
                    if hit != (mrole in members):
                        fail(name, f"{member_key} {mrole}: {'trusts' if hit else 'does not trust'} the path firebreak/{path}/ ({arn})")
                other = f"arn:aws:iam::{ACCOUNT}:role/firebreak/{path}/other-stack-GuardDutyRole-1A2B"
                if any(glob(p, other) for p in pats):
                    fail(name, f"{member_key} {mrole}: trusts another stack's role {other}")
            if mrole == "MemberNaclRole" and oncall and oncall in pats:
                fail(name, f"{member_key} MemberNaclRole trusts the on-call role")
        # The grants at home: each role exactly its member roles, in the
        # member accounts named, as the member template names them.
        member_name = main.params["MemberRoleName"]
        target = {m: f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{member_name}{sfx}" for m, sfx in MEMBER_SUFFIX.items()}
        for m in roles(member):
            built = member.role_arn(m)
            if built != target.get(m):
                fail(name, f"{member_key} {m} is {built}; the responder assumes {target.get(m)}")
        want_of = {r: {m for m, rs in MEMBER_ROLES.items() if r in rs} for r in roles(main)}
        for r, stmts in all_role_statements(main).items():
            got = {m for m, arn in target.items() if may_assume(stmts, arn, MEMBER_ACCOUNT)}
            if got != want_of[r]:
                fail(name, f"{main_key} {r} may assume {sorted(got)} in a member account, expected {sorted(want_of[r])}")
            for s in stmts:
                if s.get("Effect") != "Allow" or "sts:AssumeRole" not in actions_of(s):
                    continue
                for res in listify(s["Resource"]):
                    if res not in {f"arn:aws:iam::*:role/{member_name}{MEMBER_SUFFIX[m]}" for m in want_of[r]}:
                        fail(name, f"{main_key} {r} may assume {res}")
                accts = (s.get("Condition") or {}).get("StringEquals", {}).get("aws:ResourceAccount")
                if sorted(listify(accts or [])) != sorted(main.params["MemberAccounts"].split(",")):
                    fail(name, f"{main_key} {r}: sts:AssumeRole not limited to MemberAccounts: {s.get('Condition')}")
            if got and may_assume(stmts, f"arn:aws:iam::{MEMBER_ACCOUNT}:role/{member_name}", "999988887777"):
                fail(name, f"{main_key} {r} may assume member roles outside MemberAccounts")
        # Both sides together: who can act through which member role.
        for m in roles(member):
            can = {r for r in roles(main) if may_assume(main.role_statements(r), member.role_arn(m), MEMBER_ACCOUNT) and trusted_by(member, m, arns[r])}
            if can != MEMBER_ROLES[m]:
                fail(name, f"{main_key}/{member_key}: {m} can be used by {sorted(can)}, expected {sorted(MEMBER_ROLES[m])}")
    main = S["main_on"]
    nacl = allowed_actions(S["member_on"].role_statements("MemberNaclRole")) if "MemberNaclRole" in roles(S["member_on"]) else set()
    if nacl - NACL_ACTIONS:
        fail(name, f"MemberNaclRole allows more than NACL entries: {sorted(nacl - NACL_ACTIONS)}")
    member_name = main.params["MemberRoleName"]
    for fn in ("AlarmFunction", "ExpirerFunction"):
        env = main.function_env(fn).get("FIREBREAK_MEMBER_ROLE_NAME")
        if env != member_name + "-nacl":
            fail(name, f"{fn} acts in member accounts as {env!r}, not {member_name}-nacl")
    # The code appends -lockdown and -release to the one configured name.
    for fn in ("GuardDutyFunction", "ManualFunction", "ReleaseFunction"):
        if main.function_env(fn).get("FIREBREAK_MEMBER_ROLE_NAME") != member_name:
            fail(name, f"{fn} does not use the member role {member_name}")
    # Without MemberRoleName, no role may assume anything.
    for r, stmts in all_role_statements(S["main"]).items():
        if "sts:AssumeRole" in allowed_actions(stmts):
            fail(name, f"main {r} may sts:AssumeRole without a MemberRoleName")
    # IAM's 64 characters, with the longest suffix.
    longest = max(len(s) for s in MEMBER_SUFFIX.values())
    for t, param in ((S["templates"][0], "MemberRoleName"), (S["templates"][1], "MemberRoleName")):
        pat = t["Parameters"][param]["AllowedPattern"]
        m = re.search(r"\{[01],(\d+)\}\$$", pat)
        if not m or int(m.group(1)) + longest > 64:
            fail(name, f"{param} {pat!r} allows a name that is over 64 characters with -lockdown")


SAMPLE_PROTECTED = [
    "BreakGlassAdmin", "breakglass", "BREAKGLASS", "BREAK-GLASS", "Break_Glass_Ops", "break.glass",
    "ops-breakGlass", "emergency-break-glass-2", "Breakglass", "firebreak-ops", "Firebreak-x", "FIREBREAK-Y",
]
SAMPLE_PROTECTED_ROLES = [
    "OrganizationAccountAccessRole", "AWSControlTowerExecution", "AWSCloudFormationStackSetExecutionRole",
    "stacksets-exec-0123abcd4567ef89", "aws-service-role/support.amazonaws.com/AWSServiceRoleForSupport",
    "aws-reserved/sso.amazonaws.com/eu-west-1/AWSReservedSSO_AdministratorAccess_0123abcd",
]
SAMPLE_CONTAINABLE = ["app-server-role", "ci-deployer", "legacy-uploader", "web", "breakfast-glassware"]


@check("M1 protected principals: tag deny, every spelling, org-admin roles, ProtectedPrincipals")
def m1(S):
    name = "M1"
    for key, account in (("main_on", ACCOUNT), ("member_on", MEMBER_ACCOUNT)):
        st = S[key]
        for role, stmts in all_role_statements(st).items():
            writes = sorted(a for a in allowed_actions(stmts) if a in IAM_WRITES)
            if not writes:
                continue
            for action in IAM_WRITES:
                # anything tagged firebreak:protected
                tagged = [
                    s for s in stmts
                    if s.get("Effect") == "Deny" and action in actions_of(s)
                    and cond_keys(s).get(("Null", "aws:resourcetag/firebreak:protected")) == ["false"]
                    and covers(s, f"arn:aws:iam::{account}:role/any/path/x") and covers(s, f"arn:aws:iam::{account}:user/x")
                ]
                if not tagged:
                    fail(name, f"{key} {role}: no deny of {action} on principals tagged firebreak:protected")
            for kind in ("role", "user"):
                names = SAMPLE_PROTECTED + (SAMPLE_PROTECTED_ROLES if kind == "role" else [])
                names += ["payments-admin", "team/db-owner"]  # from ProtectedPrincipals
                for n in names:
                    for path in ("", "teams/ops/") if "/" not in n else ("",):
                        arn = f"arn:aws:iam::{account}:{kind}/{path}{n}"
                        for action in writes:
                            if not denied(stmts, action, arn):
                                fail(name, f"{key} {role} may {action} on protected {arn}")
                for n in SAMPLE_CONTAINABLE:
                    arn = f"arn:aws:iam::{account}:{kind}/{n}"
                    for action in writes:
                        if denied(stmts, action, arn):
                            fail(name, f"{key} {role}: {action} on {arn} denied; a containable principal must stay reachable")


@check("M2 no isolation of a protected instance, through the instance or its interface")
def m2(S):
    name = "M2"
    for key, account in (("main_on", ACCOUNT), ("member_on", MEMBER_ACCOUNT)):
        for role, stmts in all_role_statements(S[key]).items():
            allowed = allowed_actions(stmts)
            for action in ("ec2:ModifyNetworkInterfaceAttribute", "ec2:ModifyInstanceAttribute", "ec2:CreateTags"):
                if action not in allowed:
                    continue
                for arn in (f"arn:aws:ec2:{REGION}:{account}:instance/i-0abc", f"arn:aws:ec2:{REGION}:{account}:network-interface/eni-0abc"):
                    if action == "ec2:ModifyInstanceAttribute" and "network-interface" in arn:
                        continue
                    ok = [
                        s for s in stmts
                        if s.get("Effect") == "Deny" and action in actions_of(s) and covers(s, arn)
                        and cond_keys(s).get(("Null", "aws:resourcetag/firebreak:protected")) == ["false"]
                    ]
                    if not ok:
                        fail(name, f"{key} {role}: {action} on a protected {arn.split(':')[-1].split('/')[0]} is not denied")


SAMPLE_KEYS = {
    "once": [
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/incident.json",
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/actions/block_ip-198.51.100.77_32-0123456789abcdef.json",
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/actions/notify_team-team-89abcdef01234567.json",
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/actions/isolate_instance-i-0abc-fedcba9876543210.json",
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/released/fb-fedcba98765432100123.json",
        "index/fb-0123456789abcdef0123.json",
        "handled/2026-11-20T19/fb-0123456789abcdef0123.json",
        "expired/dt=2026-11-21/acl-0a1b2c3d-ingress-00001-1763668020_198.51.100.77_32.json",
        "evidence/fb-0123456789abcdef0123/app-uploads/users/1.json",
    ],
    # Firebreak writes these without If-None-Match: they must stay writable.
    "replaceable": [
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/actions/block_ip-198.51.100.77_32-0123456789abcdef.failed-2026-11-20T194700123Z.json",
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/actions/block_ip-198.51.100.77_32-0123456789abcdef.skipped.json",
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/actions/block_ip-198.51.100.77_32-0123456789abcdef.held.json",
        "blocks/acl-0a1b2c3d/ingress/00001/1763668020_198.51.100.77_32.json",
    ],
    "conditional": [
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/claims/block_ip-198.51.100.77_32-0123456789abcdef.json",
        "locks/acl-0a1b2c3d/ingress/00001-198.51.100.77_32.json",
        "budget/111122223333/block_ip/2026-11-20T1900Z.json",
    ],
    "deletable": [
        "blocks/acl-0a1b2c3d/ingress/00001/1763668020_198.51.100.77_32.json",
        "locks/acl-0a1b2c3d/ingress/00001-198.51.100.77_32.json",
        "incidents/dt=2026-11-20/fb-0123456789abcdef0123/claims/block_ip-198.51.100.77_32-0123456789abcdef.json",
    ],
}


@check("M4 records: Object Lock by default, written once, written by Firebreak only")
def m4(S):
    name = "M4"
    st = S["main_on"]
    buckets = st.of_type("AWS::S3::Bucket")
    if "RecordsBucket" not in buckets:
        return fail(name, "no RecordsBucket")
    raw = st.resources["RecordsBucket"]["Properties"]
    b = st.props("RecordsBucket")
    if b.get("ObjectLockEnabled") is not True or b.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        fail(name, "the records bucket has no Object Lock")
    rule = raw.get("ObjectLockConfiguration", {}).get("Rule", {}).get("DefaultRetention", {})
    if rule.get("Days") != {"Ref": "RecordsRetentionDays"}:
        fail(name, f"Object Lock retention is not RecordsRetentionDays: {rule}")
    mode = rule.get("Mode")
    mparam = st.t["Parameters"].get(mode.get("Ref") if isinstance(mode, dict) else "", {})
    if set(mparam.get("AllowedValues", [])) != {"GOVERNANCE", "COMPLIANCE"} or mparam.get("Default") != "GOVERNANCE":
        fail(name, f"Object Lock mode is not a GOVERNANCE (default) / COMPLIANCE parameter: {mode}")
    for r in raw["LifecycleConfiguration"]["Rules"]:
        if r.get("Prefix") in ("incidents/", "expired/", "index/", "handled/"):
            if r.get("NoncurrentVersionExpiration", {}).get("NoncurrentDays") != {"Ref": "RecordsRetentionDays"}:
                fail(name, f"older versions under {r['Prefix']} are not kept for the retention period")
    prefixes = {r.get("Prefix") for r in raw["LifecycleConfiguration"]["Rules"] if r.get("ExpirationInDays")}
    for p in ("locks/", "budget/", "index/", "handled/"):
        if p not in prefixes:
            fail(name, f"no lifecycle expiry for {p}")
    pols = [st.props(k) for k, v in st.of_type("AWS::S3::BucketPolicy").items() if st.props(k)["Bucket"] == "<ref:RecordsBucket>"]
    if not pols:
        return fail(name, "the records bucket has no policy")
    stmts = [s for p in pols for s in listify(p["PolicyDocument"]["Statement"])]
    arn = st.getatt("RecordsBucket", "Arn")

    def put_denied_without(key, absent):
        """A Deny of PutObject on key that applies when the headers in `absent` are missing."""
        for s in stmts:
            if s.get("Effect") != "Deny" or not any(glob(a, "s3:PutObject") for a in actions_of(s)):
                continue
            if not covers(s, f"{arn}/{key}"):
                continue
            c = s.get("Condition") or {}
            if set(c) == {"Null"} and all(v == "true" for v in c["Null"].values()) and set(c["Null"]) <= absent:
                return True
        return False

    finals = [f"incidents/dt=2026-11-20/fb-0123456789abcdef0123/actions/block_ip-203.0.113.9_32-00000000000000{d}{d}.json" for d in "0123456789abcdef"]
    for key in SAMPLE_KEYS["once"] + finals:
        if not put_denied_without(key, {"s3:if-none-match"}):
            fail(name, f"a PutObject on {key} without If-None-Match is not refused")
    for key in SAMPLE_KEYS["conditional"]:
        if not put_denied_without(key, {"s3:if-none-match", "s3:if-match"}):
            fail(name, f"an unconditional PutObject on {key} is not refused")
    for key in SAMPLE_KEYS["replaceable"]:
        if put_denied_without(key, {"s3:if-none-match", "s3:if-match"}):
            fail(name, f"Firebreak's unconditional write of {key} would be refused")
    writers = [st.role_arn(r) for r in ("AlarmRole", "GuardDutyRole", "ManualRole", "ReleaseRole", "ExpirerRole")]
    writers.append(st.params["OnCallRoleArn"])
    others = [f"arn:aws:iam::{ACCOUNT}:role/Admin", f"arn:aws:iam::{ACCOUNT}:user/ci"]
    for action in ("s3:PutObject", "s3:DeleteObject"):
        only = [
            s for s in stmts
            if s.get("Effect") == "Deny" and s.get("Principal") == "*" and any(glob(a, action) for a in actions_of(s))
            and covers(s, f"{arn}/incidents/x/incident.json") and set(s.get("Condition", {})) == {"ArnNotLike"}
        ]
        pats = [p for s in only for p in listify(s["Condition"]["ArnNotLike"].get("aws:PrincipalArn", []))]
        if not only:
            fail(name, f"{action} is not refused to principals other than Firebreak's roles")
        for w in writers:
            if not any(glob(p, w) for p in pats):
                fail(name, f"{action} by Firebreak's {w} is refused")
        for o in others:
            if any(glob(p, o) for p in pats):
                fail(name, f"{action} by {o} is allowed")
    for s in stmts:
        if s.get("Effect") == "Deny" and not s.get("Condition") and any(
            glob(a, x) for a in actions_of(s) for x in ("s3:PutBucketPolicy", "s3:DeleteBucketPolicy")
        ):
            fail(name, "the bucket policy locks its administrators out of changing it")
    # Deletes: Firebreak's roles may delete small state, and the policy lets them.
    for r in ("AlarmRole", "GuardDutyRole", "ManualRole", "ReleaseRole", "ExpirerRole"):
        rs = st.role_statements(r)
        for key in SAMPLE_KEYS["deletable"]:
            if not any(s.get("Effect") == "Allow" and "s3:DeleteObject" in actions_of(s) and covers(s, f"{arn}/{key}") for s in rs):
                fail(name, f"{r} may not delete {key}")
    for key in SAMPLE_KEYS["deletable"]:
        for s in stmts:
            if s.get("Effect") == "Deny" and "s3:DeleteObject" in actions_of(s) and not s.get("Condition"):
                hit = covers(s, f"{arn}/{key}") if "Resource" in s else not any(glob(r, f"{arn}/{key}") for r in listify(s["NotResource"]))
                if hit:
                    fail(name, f"the bucket policy refuses Firebreak's delete of {key}")
    for key in SAMPLE_KEYS["once"][:1]:
        if not any(
            s.get("Effect") == "Deny" and "s3:DeleteObject" in actions_of(s) and not s.get("Condition")
            and ("NotResource" in s and not any(glob(r, f"{arn}/{key}") for r in listify(s["NotResource"])))
            for s in stmts
        ):
            fail(name, f"a delete (marker) of {key} is not refused")
    for action in ("s3:DeleteObjectVersion", "s3:BypassGovernanceRetention", "s3:PutObjectRetention"):
        if not any(s.get("Effect") == "Deny" and action in actions_of(s) and not s.get("Condition") for s in stmts):
            fail(name, f"{action} is not refused")


@check("M5 alarms on Firebreak itself, reserved concurrency")
def m5(S):
    name = "M5"
    st = S["main_on"]
    alarms = {k: st.props(k) for k in st.of_type("AWS::CloudWatch::Alarm")}
    ops = "<ref:OperationsTopic>"
    if "OperationsTopic" not in st.of_type("AWS::SNS::Topic"):
        fail(name, "no operations topic")

    def alarm_on(metric, dim, value):
        return [
            a for a in alarms.values()
            if a.get("MetricName") == metric and {"Name": dim, "Value": value} in a.get("Dimensions", []) and ops in a.get("AlarmActions", [])
        ]

    for fn in st.of_type("AWS::Serverless::Function"):
        for metric in ("Errors", "Throttles"):
            if not alarm_on(metric, "FunctionName", f"<ref:{fn}>"):
                fail(name, f"no {metric} alarm on {fn} to the operations topic")
        if "ReservedConcurrentExecutions" not in st.props(fn):
            fail(name, f"{fn} has no reserved concurrency")
    if not alarm_on("ApproximateNumberOfMessagesVisible", "QueueName", st.getatt("FailedEventsQueue", "QueueName")):
        fail(name, "no alarm on the failed-events queue")
    rule = st.props("GuardDutyFunction")["Events"]["Findings"]["Properties"].get("RuleName")
    if not rule or not alarm_on("FailedInvocations", "RuleName", rule):
        fail(name, f"no FailedInvocations alarm on the GuardDuty rule ({rule})")


@check("H4 release apart (here and through the member roles), code signing, alarms on foreign IAM writes and on an Allow under Firebreak's names")
def h4(S):
    name = "H4"
    st = S["main_on"]
    fns = st.of_type("AWS::Serverless::Function")
    for fn, binary in FUNCTIONS.items():
        if fn not in fns:
            fail(name, f"no {fn}")
            continue
        r = st.resources[fn]
        if r.get("Metadata", {}).get("BuildProperties", {}).get("Binary") != binary:
            fail(name, f"{fn} does not build {binary}")
        csc = st.props(fn).get("CodeSigningConfigArn", "")
        m = re.fullmatch(r"<getatt:(\w+)\.CodeSigningConfigArn>", csc)
        if not m or st.props(m.group(1)).get("CodeSigningPolicies", {}).get("UntrustedArtifactOnDeployment") != "Enforce":
            fail(name, f"{fn} does not enforce code signing when signing profiles are given")
    role_of = {fn: re.fullmatch(r"arn:aws:iam::\d+:role/.*?(\w+Role)-1A2B3C4D5E6F", st.props(fn)["Role"]) for fn in fns}
    if len({m.group(1) for m in role_of.values() if m}) != len(fns):
        fail(name, "the functions do not have a role each")
    undo = UNDO
    for r in ("GuardDutyRole", "ManualRole", "AlarmRole", "ExpirerRole"):
        extra = allowed_actions(st.role_statements(r)) & undo
        if extra:
            fail(name, f"{r} holds release powers {sorted(extra)}")
    # In a member account, the undo is the release role's alone too.
    for main_key, member_key in (("main_on", "member_on"), ("main_long", "member_long"), ("main_member_default", "member")):
        member = S[member_key]
        for m, who in member_users(S, main_key, member_key).items():
            extra = allowed_actions(member.role_statements(m)) & undo
            if extra and who - {"ReleaseRole"}:
                fail(name, f"{member_key} {m} holds release powers {sorted(extra)} and {sorted(who - {'ReleaseRole'})} may assume it")
            if "ReleaseRole" in who:
                held = allowed_actions(member.role_statements(m))
                for a in ("iam:DeleteRolePolicy", "iam:DeleteUserPolicy", "logs:DeleteRetentionPolicy", "iam:UpdateAccessKey", "ec2:DeleteNetworkAclEntry"):
                    if a not in held and (a.startswith("iam:") or a.startswith("ec2:") or member.params["LogGroups"]):
                        fail(name, f"{member_key} {m} (the release role's) lacks {a}")
    rel = allowed_actions(st.role_statements("ReleaseRole"))
    for a in ("iam:DeleteRolePolicy", "iam:DeleteUserPolicy", "logs:DeleteRetentionPolicy", "iam:UpdateAccessKey", "ec2:DeleteNetworkAclEntry"):
        if a not in rel:
            fail(name, f"ReleaseRole lacks {a}")
    # Each role's IAM actions exactly, on users and roles of its own account
    # only: a new IAM call is a change here, reviewed like code.
    for r, want in IAM_ACTIONS.items():
        stmts = [s for s in st.role_statements(r) if s.get("Effect") == "Allow"]
        got = {a for a in allowed_actions(stmts) if a.startswith("iam:")}
        if got != want:
            fail(name, f"{r} IAM actions differ from the reviewed set: {sorted(got ^ want)}")
        for s in stmts:
            for a in actions_of(s) & want:
                kind = "role" if "Role" in a else "user"
                resources = set(listify(s["Resource"]))
                if resources != {f"arn:aws:iam::{ACCOUNT}:{kind}/*"}:
                    fail(name, f"{r} allows {a} on {sorted(resources)}")
    if "ReleaseFunctionName" not in st.t.get("Outputs", {}):
        fail(name, "no ReleaseFunctionName output")
    # The alarms: any Firebreak role's inline-policy write but its own
    # names, and a write under its own names that allows something. Sample
    # CloudTrail events go through the rules as EventBridge matches them.
    rules = [st.props(k) for k in st.of_type("AWS::Events::Rule")]
    to_ops = [r for r in rules if r.get("State") == "ENABLED" and any(t.get("Arn") == "<ref:OperationsTopic>" for t in r.get("Targets", []))]

    def fires(issuer, event, policy, document=None):
        params = {"policyName": policy, "roleName": "app-server"}
        if document is not None:
            params["policyDocument"] = document
        e = {
            "source": "aws.iam", "detail-type": "AWS API Call via CloudTrail",
            "detail": {
                "eventSource": "iam.amazonaws.com", "eventName": event,
                "userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"type": "Role", "arn": issuer}}},
                "requestParameters": params,
            },
        }
        return any(event_matches(r.get("EventPattern", {}), e) for r in to_ops)

    allow = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
    allows = {
        "an Allow": allow,
        "an Allow beside a Deny": OWN_DOCUMENTS[0][:-2] + ',{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}',
        "an Allow spaced out": '{ "Version" : "2012-10-17", "Statement" : [ { "Effect" : "Allow", "Action" : "*", "Resource" : "*" } ] }',
        "an Allow spelt with a JSON escape": allow.replace("Allow", "\\u0041llow"),
    }
    for arn in (st.role_arn(r) for r in roles(st)):
        for event in ("PutRolePolicy", "PutUserPolicy", "DeleteRolePolicy", "DeleteUserPolicy"):
            doc = None if event.startswith("Delete") else OWN_DOCUMENTS[0]
            if not fires(arn, event, "AdminAccess", doc):
                fail(name, f"{event} of a foreign policy name by {arn} reaches no rule to the operations topic")
        for policy in sorted(OWN_POLICY_NAMES):
            for event in ("PutRolePolicy", "PutUserPolicy"):
                for what, doc in allows.items():
                    if not fires(arn, event, policy, doc):
                        fail(name, f"{event} of {policy} with {what} by {arn} reaches no rule to the operations topic")
                for doc in OWN_DOCUMENTS:
                    if fires(arn, event, policy, doc):
                        fail(name, f"Firebreak's own {event} of {policy} ({doc}) by {arn} alarms the operations topic")
            if fires(arn, "DeleteRolePolicy", policy):
                fail(name, f"Firebreak's own delete of {policy} by {arn} alarms the operations topic")


# What Firebreak writes under its own names (crates/aws/src/actions/iam), in
# the key orders serde_json may give.
OWN_DOCUMENTS = [
    '{"Statement":[{"Action":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-20T19:47:00Z"}},"Effect":"Deny","Resource":"*","Sid":"Firebreakfb0123456789abcdef0123"}],"Version":"2012-10-17"}',
    '{"Version":"2012-10-17","Statement":[{"Sid":"Firebreakfb0123456789abcdef0123","Effect":"Deny","Action":"*","Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-20T19:47:00Z"}}}]}',
    '{"Statement":[{"Action":"*","Effect":"Deny","Resource":"*","Sid":"Firebreakfbfedcba98765432100123"}],"Version":"2012-10-17"}',
]


def _wildcard(pattern, text):
    """EventBridge's wildcard: * any run of characters; \\* and \\\\ literal."""
    rx, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            rx += re.escape(pattern[i + 1])
            i += 2
            continue
        rx += ".*" if c == "*" else re.escape(c)
        i += 1
    return re.fullmatch(rx, text, re.S) is not None


def _value_matches(m, v):
    if isinstance(m, dict):
        (op, arg), = m.items()
        if op == "prefix":
            return isinstance(v, str) and v.startswith(arg)
        if op == "suffix":
            return isinstance(v, str) and v.endswith(arg)
        if op == "wildcard":
            return isinstance(v, str) and _wildcard(arg, v)
        if op == "equals-ignore-case":
            return isinstance(v, str) and v.lower() == arg.lower()
        if op == "anything-but":
            if isinstance(arg, dict):
                return not _value_matches(arg, v)
            return v not in listify(arg)
        raise KeyError(f"event pattern operator {op} not modelled")
    return m == v


def event_matches(pattern, event):
    """EventBridge's match of an event pattern (the operators Firebreak uses, and $or)."""
    for k, want in pattern.items():
        if k == "$or":
            if not any(event_matches(p, event) for p in want):
                return False
            continue
        if isinstance(want, dict):
            if not isinstance(event.get(k), dict) or not event_matches(want, event[k]):
                return False
            continue
        if k not in event:
            if not any(isinstance(m, dict) and m.get("exists") is False for m in want):
                return False
            continue
        values = event[k] if isinstance(event[k], list) else [event[k]]
        if not any(_value_matches(m, v) for m in want if not (isinstance(m, dict) and "exists" in m) for v in values) and not any(
            isinstance(m, dict) and m.get("exists") is True for m in want
        ):
            return False
    return True


@check("M6 other regions' GuardDuty findings reach the home region")
def m6(S):
    name = "M6"
    st = S["region"]
    home = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    ok = False
    for k in st.of_type("AWS::Events::Rule"):
        p = st.props(k)
        if p["EventPattern"].get("source") == ["aws.guardduty"]:
            for t in p.get("Targets", []):
                if t.get("Arn") == home and t.get("RoleArn"):
                    ok = True
    if not ok:
        fail(name, "template-region.yaml forwards no GuardDuty findings to the home region's default bus")
    at_home = Stack(S["templates"][2], {"HomeRegion": REGION}, region=REGION)
    if at_home.of_type("AWS::Events::Rule"):
        fail(name, "template-region.yaml in the home region would forward the bus to itself")


@check("Lows: topic policies, SSE, retained logs, partitions, schedule name, policy sizes")
def lows(S):
    name = "Low"
    for key in ("main_on", "region"):
        st = S[key]
        topics = st.of_type("AWS::SNS::Topic")
        covered = {t for k in st.of_type("AWS::SNS::TopicPolicy") for t in st.props(k)["Topics"]}
        for t in topics:
            if f"<ref:{t}>" not in covered:
                fail(name, f"topic {t} has no topic policy")
            if not st.props(t).get("KmsMasterKeyId"):
                fail(name, f"topic {t} is not encrypted")
    st = S["main_on"]
    for t in ("TeamTopic", "StakeholderTopic"):
        stmts = [s for k in st.of_type("AWS::SNS::TopicPolicy") if f"<ref:{t}>" in st.props(k)["Topics"] for s in listify(st.props(k)["PolicyDocument"]["Statement"])]
        for action in ("sns:Publish", "sns:Subscribe"):
            if not any(s.get("Effect") == "Deny" and action in actions_of(s) and "ArnNotLike" in (s.get("Condition") or {}) for s in stmts):
                fail(name, f"{t}: {action} is open to anyone in the account")
    for k in st.of_type("AWS::Logs::LogGroup"):
        if st.resources[k].get("DeletionPolicy") != "Retain":
            fail(name, f"log group {k} is not retained")
    st = S["main_long"]
    sched = st.props("ExpirerFunction")["Events"]["Every15Minutes"]["Properties"].get("Name", "")
    if st.stack not in str(sched):
        fail(name, f"the expirer's schedule name {sched!r} does not carry the stack name")
    # Other partitions: no ARN of the aws partition survives.
    main, member, region = S["templates"]
    on = S["main_on"].params
    for partition in ("aws-cn", "aws-us-gov"):
        for t, params in ((main, on), (member, S["member_on"].params), (region, {"HomeRegion": REGION})):
            params = {k: v.replace("arn:aws:", f"arn:{partition}:") for k, v in params.items()}
            st = Stack(t, params, partition=partition)
            text = json.dumps({k: st.props(k) for k in st.resources if st.exists(k)})
            if "arn:aws:" in text:
                fail(name, f"{t['Description'][:40]}…: arn:aws: in the {partition} partition: {text[text.index('arn:aws:') - 80:text.index('arn:aws:') + 80]}")
    # IAM's size limits, with long names.
    for key in ("main_long", "member_long"):
        st = S[key]
        for r in roles(st):
            inline = sum(len(re.sub(r"\s", "", json.dumps(p["PolicyDocument"]))) for p in st.props(r).get("Policies", []))
            if inline > 10240:
                fail(name, f"{key} {r}: inline policies of {inline} characters (IAM allows 10240)")
        for m in st.of_type("AWS::IAM::ManagedPolicy"):
            size = len(re.sub(r"\s", "", json.dumps(st.props(m)["PolicyDocument"])))
            if size > 6144:
                fail(name, f"{key} {m}: {size} characters (IAM allows 6144)")


def bookkeeping_of(actions):
    """What stays in the security account: records, notices, queues, keys, tokens, Security Hub, own logs."""
    out = {a for a in actions if a.split(":")[0] in ("s3", "sns", "sqs", "kms", "sts", "securityhub")}
    return out | ({"logs:CreateLogStream", "logs:PutLogEvents"} & set(actions))


def policy_actions(st, role, policy_name):
    """The actions a role's inline policy of that name allows (None if it has none)."""
    for pol in st.props(role).get("Policies", []):
        if pol["PolicyName"] == policy_name:
            return allowed_actions(listify(pol["PolicyDocument"]["Statement"]))
    return None


@check("Member template: each member role exactly what its functions hold at home for that purpose")
def member_invariant(S):
    name = "Member"
    main, member = S["main_on"], S["member_on"]
    got = {r: allowed_actions(member.role_statements(r)) for r in MEMBER_ROLES if r in roles(member)}
    missing = set(MEMBER_ROLES) - set(got)
    if missing:
        return fail(name, f"template-member.yaml has no {sorted(missing)}")
    home = {r: allowed_actions(main.role_statements(r)) for r in ("GuardDutyRole", "ManualRole", "ReleaseRole", "AlarmRole", "ExpirerRole")}
    # The lockdown at home is the manual role's own policy: its reads, its
    # tag-conditioned writes and its evidence copies.
    lockdown = policy_actions(main, "ManualRole", "lockdown")
    if lockdown is None:
        return fail(name, "ManualRole has no inline policy named lockdown to compare MemberLockdownRole with")
    if not set(LOCKDOWN_WRITES) <= lockdown:
        fail(name, f"ManualRole's lockdown policy lacks {sorted(set(LOCKDOWN_WRITES) - lockdown)}")
    # Containment: the findings and manual roles, without the bookkeeping
    # and without anything of the lockdown.
    contain = home["GuardDutyRole"] | home["ManualRole"]
    contain -= bookkeeping_of(contain) | lockdown
    # The lockdown: that policy, and the retention it raises (read first).
    lock = lockdown | {"logs:DescribeLogGroups", "logs:PutRetentionPolicy"}
    release = home["ReleaseRole"] - bookkeeping_of(home["ReleaseRole"])
    nacl = (home["AlarmRole"] | home["ExpirerRole"]) & NACL_ACTIONS
    for r, want in (("MemberRole", contain), ("MemberLockdownRole", lock), ("MemberReleaseRole", release), ("MemberNaclRole", nacl)):
        if got[r] != want:
            fail(name, f"{r} differs from what it stands for at home: has {sorted(got[r] - want)}, lacks {sorted(want - got[r])}")
    # The lockdown's retention only on the configured groups.
    groups = {f"arn:aws:logs:*:*:log-group:{g}:*" for g in member.params["LogGroups"].split(",")}
    for s in member.role_statements("MemberLockdownRole"):
        if s.get("Effect") == "Allow" and "logs:PutRetentionPolicy" in actions_of(s) and set(listify(s["Resource"])) != groups:
            fail(name, f"MemberLockdownRole: PutRetentionPolicy on {s['Resource']}, not the LogGroups {sorted(groups)}")
    # Bookkeeping never in a member account; S3 only as the lockdown's evidence.
    for r, acts in got.items():
        kept = bookkeeping_of(acts) - ({"s3:ListBucket", "s3:GetObject", "s3:PutObject"} if r == "MemberLockdownRole" else set())
        if kept:
            fail(name, f"{r} holds the security account's bookkeeping {sorted(kept)}")
    for r in roles(member):
        for a in allowed_actions(member.role_statements(r)):
            if a.endswith("*"):
                fail(name, f"{r} allows a wildcard action {a}")
        for s in member.role_statements(r):
            if s.get("Effect") == "Allow" and actions_of(s) & (IAM_WRITES | {"ec2:CreateTags"}) and "*" in listify(s["Resource"]):
                fail(name, f"{r} allows {sorted(actions_of(s))} on *")
    for key in ("main_on", "member_on"):
        for r, stmts in all_role_statements(S[key]).items():
            for a in allowed_actions(stmts):
                if a == "*" or a.endswith(":*"):
                    fail(name, f"{key} {r} allows {a}")


SECURITYHUB_READ_WRITE = {"securityhub:GetFindings", "securityhub:BatchUpdateFindings"}
# What BatchUpdateFindings could change besides the note and the workflow.
SECURITYHUB_FIELDS = [
    "Severity.Label", "Severity.Normalized", "Severity.Product", "Confidence", "Criticality",
    "Types", "RelatedFindings", "UserDefinedFields.key", "UserDefinedFields.value", "VerificationState",
]


def field_denied(stmts, field):
    """A Deny of BatchUpdateFindings whenever a request carries `field`."""
    return any(
        s.get("Effect") == "Deny" and any(glob(a, "securityhub:BatchUpdateFindings") for a in actions_of(s))
        and "*" in listify(s.get("Resource", []))
        and set((s.get("Condition") or {})) == {"Null"}
        and cond_keys(s).get(("Null", f"securityhub:asffsyntaxpath/{field}".lower())) == ["false"]
        for s in stmts
    )


@check("Security Hub: the write-back reads and notes findings on the hub, nothing more; custom actions and rules")
def securityhub(S):
    name = "SecurityHub"
    main = S["templates"][0]
    hub = f"arn:aws:securityhub:{REGION}:{ACCOUNT}:hub/default"
    off = Stack(main, {"SecurityHubWriteBack": "false"})
    for key, st in (("main", S["main"]), ("main_on", S["main_on"]), ("writeback_off", off)):
        for role, stmts in all_role_statements(st).items():
            for s in stmts:
                acts = {a for a in actions_of(s) if a.lower().startswith("securityhub:")}
                if s.get("Effect") != "Allow" or not acts:
                    continue
                if not acts <= SECURITYHUB_READ_WRITE:
                    fail(name, f"{key} {role} allows Security Hub {sorted(acts - SECURITYHUB_READ_WRITE)}: the write-back needs GetFindings and BatchUpdateFindings only")
                if listify(s.get("Resource", [])) != [hub]:
                    fail(name, f"{key} {role} allows {sorted(acts)} on {s.get('Resource')}, not the hub {hub} alone")
            allowed = {a for a in allowed_actions(stmts) if a.lower().startswith("securityhub:")}
            want = SECURITYHUB_READ_WRITE if key != "writeback_off" and role in ("GuardDutyRole", "ReleaseRole") else set()
            if allowed != want:
                fail(name, f"{key} {role}: Security Hub actions {sorted(allowed)}, expected {sorted(want)}")
            if "securityhub:BatchUpdateFindings" not in allowed:
                continue
            status = [
                s for s in stmts
                if s.get("Effect") == "Deny" and "securityhub:BatchUpdateFindings" in actions_of(s)
                and set(cond_keys(s).get(("StringEquals", "securityhub:asffsyntaxpath/workflow.status"), [])) >= {"NEW", "RESOLVED", "SUPPRESSED"}
            ]
            if not status:
                fail(name, f"{key} {role} may set a workflow status other than NOTIFIED")
            for field in SECURITYHUB_FIELDS:
                if not field_denied(stmts, field):
                    fail(name, f"{key} {role} may update {field} with BatchUpdateFindings")
        env = st.function_env("GuardDutyFunction").get("FIREBREAK_SECURITYHUB_WRITEBACK")
        if env != st.params["SecurityHubWriteBack"]:
            fail(name, f"{key}: FIREBREAK_SECURITYHUB_WRITEBACK is {env!r}, not the parameter")
    if main["Parameters"]["SecurityHubWriteBack"].get("Default") != "true":
        fail(name, "the write-back is not on by default")
    st = S["main"]
    if st.of_type("AWS::SecurityHub::ActionTarget"):
        fail(name, "custom actions are created by default (Security Hub may not be enabled)")
    rules = {k: st.props(k) for k in st.of_type("AWS::Events::Rule")}
    if any(r["EventPattern"].get("source") == ["aws.securityhub"] for r in rules.values()):
        fail(name, "a Security Hub rule is on by default beside the GuardDuty rule: a finding would be routed twice")
    on = Stack(main, {"SecurityHubCustomActions": "true", "SecurityHubImportedGuardDuty": "true"})
    targets = {k: on.props(k) for k in on.of_type("AWS::SecurityHub::ActionTarget")}
    got = sorted((t["Id"], t["Name"]) for t in targets.values())
    want = [("FirebreakContain", "firebreak-contain"), ("FirebreakQuarantine", "firebreak-quarantine"), ("FirebreakRecord", "firebreak-record")]
    if got != want:
        fail(name, f"custom actions {got}, not {want} (the core's defaults)")
    for t in targets.values():
        if len(t["Name"]) > 20 or len(t["Id"]) > 20:
            fail(name, f"custom action {t} has a name or id over Security Hub's 20 characters")
    rules = {k: on.props(k) for k in on.of_type("AWS::Events::Rule")}
    perms = [on.props(k) for k in on.of_type("AWS::Lambda::Permission")]
    findings_fn = "<getatt:GuardDutyFunction.Arn>"
    custom = [k for k, r in rules.items() if r["EventPattern"].get("detail-type") == ["Security Hub Findings - Custom Action"]]
    imported = [k for k, r in rules.items() if r["EventPattern"].get("detail-type") == ["Security Hub Findings - Imported"]]
    if len(custom) != 1 or len(imported) != 1:
        fail(name, f"expected one custom-action rule and one imported-findings rule, found {custom} and {imported}")
        return
    if sorted(rules[custom[0]]["EventPattern"].get("resources", [])) != sorted(f"<ref:{k}>" for k in targets):
        fail(name, "the custom-action rule does not match Firebreak's custom actions alone")
    products = rules[imported[0]]["EventPattern"].get("detail", {}).get("findings", {}).get("ProductArn", [])
    if products != [{"suffix": ":product/aws/guardduty"}]:
        fail(name, f"the imported-findings rule routes products {products}, not GuardDuty's alone")
    for k in custom + imported:
        r = rules[k]
        if r["EventPattern"].get("source") != ["aws.securityhub"]:
            fail(name, f"{k} does not match aws.securityhub")
        if [t.get("Arn") for t in r.get("Targets", [])] != [findings_fn]:
            fail(name, f"{k} does not go to the findings (GuardDuty) function alone")
        if not all(t.get("DeadLetterConfig") for t in r.get("Targets", [])):
            fail(name, f"{k} has no dead-letter queue")
        if not any(p.get("SourceArn") == f"<getatt:{k}.Arn>" and p.get("Principal") == "events.amazonaws.com" for p in perms):
            fail(name, f"{k} may not invoke the findings function (no permission scoped to it)")


def member_users(S, main_key="main_on", member_key="member_on"):
    """{member role: the responder roles its trust lets in} (the member account's side alone)."""
    main, member = S[main_key], S[member_key]
    return {m: {r for r in roles(main) if trusted_by(member, m, main.role_arn(r))} for m in roles(member)}


@check("L1 the lockdown changes only what is tagged firebreak:lockdown in its own account, never what is protected")
def l1(S):
    name = "L1"
    samples = {
        "ecs:UpdateService": "arn:aws:ecs:{r}:{a}:service/prod/web-api",
        "elasticloadbalancing:ModifyListener": "arn:aws:elasticloadbalancing:{r}:{a}:listener/app/web/50dc/f2f7",
        "secretsmanager:RotateSecret": "arn:aws:secretsmanager:{r}:{a}:secret:prod/admin-AbCdEf",
    }
    for key, account in (("main_on", ACCOUNT), ("member_on", MEMBER_ACCOUNT)):
        for role, stmts in all_role_statements(S[key]).items():
            held = set()
            for s in stmts:
                if s.get("Effect") != "Allow":
                    continue
                acts = {a for a in LOCKDOWN_WRITES if any(glob(x, a) for x in actions_of(s))}
                own = all(str(r).startswith("<getatt:") for r in listify(s.get("Resource", [])))
                if not acts or (acts == {"lambda:InvokeFunction"} and own):
                    continue  # the scheduler invoking this stack's expirer
                held |= acts
                c = cond_keys(s)
                if c.get(("Null", "aws:resourcetag/firebreak:lockdown")) != ["false"]:
                    fail(name, f"{key} {role}: {sorted(acts)} without the firebreak:lockdown tag condition: {json.dumps(s)}")
                for r in listify(s.get("Resource", [])):
                    kinds = {LOCKDOWN_WRITES[a] for a in acts}
                    if f":{account}:" not in r or not any(k in r for k in kinds):
                        fail(name, f"{key} {role}: {sorted(acts)} on {r}, beyond this account's {sorted(kinds)}")
            for action in sorted(held & set(samples)):
                arn = samples[action].format(r=REGION, a=account)
                ok = [
                    s for s in stmts
                    if s.get("Effect") == "Deny" and any(glob(x, action) for x in actions_of(s)) and covers(s, arn)
                    and cond_keys(s).get(("Null", "aws:resourcetag/firebreak:protected")) == ["false"]
                ]
                if not ok:
                    fail(name, f"{key} {role}: {action} on a resource tagged firebreak:protected is not denied")


@check("L2 the lockdown is a responder's command: the manual role takes down, the release role restores, no finding's role does either, here or through a member role")
def l2(S):
    name = "L2"
    st = S["main_on"]
    writes = set(LOCKDOWN_WRITES)
    for r in ("GuardDutyRole", "AlarmRole", "ExpirerRole"):
        extra = allowed_actions(st.role_statements(r)) & writes
        if extra:
            fail(name, f"{r} holds the lockdown's {sorted(extra)}: only a responder's command locks down")
    manual = allowed_actions(st.role_statements("ManualRole"))
    if not writes <= manual:
        fail(name, f"ManualRole lacks {sorted(writes - manual)}")
    release = allowed_actions(st.role_statements("ReleaseRole"))
    restore = {"ecs:UpdateService", "elasticloadbalancing:ModifyListener"}
    if not restore <= release:
        fail(name, f"ReleaseRole cannot restore: it lacks {sorted(restore - release)}")
    if release & (writes - restore):
        fail(name, f"ReleaseRole may {sorted(release & (writes - restore))}: a release rotates nothing")
    # The same in every member account, whoever the member roles let in.
    for main_key, member_key in (("main_on", "member_on"), ("main_long", "member_long"), ("main_member_default", "member")):
        member = S[member_key]
        users = member_users(S, main_key, member_key)
        for m, who in users.items():
            held = allowed_actions(member.role_statements(m))
            finding = who & set(FINDING_ROLES)
            if finding and held & writes:
                fail(name, f"{member_key} {m} holds the lockdown's {sorted(held & writes)} and {sorted(finding)} may assume it: only a responder's command locks down")
            if finding and held & {"s3:PutObject"}:
                fail(name, f"{member_key} {m} writes evidence and {sorted(finding)} may assume it")
            if "ReleaseRole" in who and held & (writes - restore):
                fail(name, f"{member_key} {m} may {sorted(held & (writes - restore))} and the release role may assume it: a release rotates nothing")
            if "ReleaseRole" in who and held & {"s3:PutObject"}:
                fail(name, f"{member_key} {m} writes evidence and the release role may assume it")
            if held & (writes - restore) and who - {"ManualRole"}:
                fail(name, f"{member_key} {m} holds the lockdown's {sorted(held & (writes - restore))} and {sorted(who - {'ManualRole'})} may assume it: the manual role alone locks down")
            if held & restore and who - {"ManualRole", "ReleaseRole"}:
                fail(name, f"{member_key} {m} holds {sorted(held & restore)} and {sorted(who - {'ManualRole', 'ReleaseRole'})} may assume it: the manual role takes down, the release role restores")
        lockers = [m for m in users if writes <= allowed_actions(member.role_statements(m)) and "ManualRole" in users[m]]
        if not lockers:
            fail(name, f"{member_key}: no member role the manual role may assume can lock down")
        restorers = [m for m in users if restore <= allowed_actions(member.role_statements(m)) and "ReleaseRole" in users[m]]
        if not restorers:
            fail(name, f"{member_key}: no member role the release role may assume restores services and listeners")


@check("L3 evidence: read only from EvidenceBuckets, written once into evidence/, kept as long as the records")
def l3(S):
    name = "L3"
    for key in ("main_on", "member_on"):
        st = S[key]
        sources = st.params["EvidenceBuckets"].split(",")
        allowed = {f"arn:aws:s3:::{b}" for b in sources} | {f"arn:aws:s3:::{b}/*" for b in sources}
        allowed.add(f"arn:aws:s3:::{st.params['EvidenceBucket']}/evidence/*")
        if "RecordsBucket" in st.resources:
            records = st.getatt("RecordsBucket", "Arn")
            allowed |= {records, f"{records}/*"}
        # The EvidenceBucket itself may only be listed (HeadObject answers a
        # copy not made yet with 404, not 403), by the role that copies.
        evidence_bucket = f"arn:aws:s3:::{st.params['EvidenceBucket']}"
        copier = "ManualRole" if key == "main_on" else "MemberLockdownRole"
        listed = False
        for role, stmts in all_role_statements(st).items():
            for s in stmts:
                if s.get("Effect") != "Allow" or not actions_of(s) & {"s3:GetObject", "s3:ListBucket", "s3:PutObject"}:
                    continue
                for r in listify(s.get("Resource", [])):
                    if r == evidence_bucket and actions_of(s) == {"s3:ListBucket"} and role == copier:
                        listed = True
                    elif r not in allowed:
                        fail(name, f"{key} {role}: S3 reads or writes on {r}, outside the records and the evidence buckets")
        if not listed:
            fail(name, f"{key} {copier} may not list {evidence_bucket}: a copy not made yet answers 403, and every evidence copy fails")
        if key == "member_on":
            continue
        raw = st.resources["RecordsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        kept = [r for r in raw if r.get("Prefix") == "evidence/"]
        if not kept or kept[0].get("ExpirationInDays") != {"Ref": "RecordsRetentionDays"}:
            fail(name, "the records bucket keeps no evidence/ for the retention period")
        env = st.function_env("ManualFunction")
        if env.get("FIREBREAK_EVIDENCE_BUCKET") != st.params["EvidenceBucket"]:
            fail(name, "the manual function is not told the EvidenceBucket")


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])
    S = scenarios(root)
    for title, f in CHECKS:
        before = len(FAILURES)
        try:
            f(S)
        except Exception as e:  # a template the checks cannot read is a failure too
            fail(title, f"{type(e).__name__}: {e}")
        if len(FAILURES) > before:
            print(f"FAIL {title}")
    if FAILURES:
        print("\n".join(FAILURES))
        print(f"{len(FAILURES)} failure(s)")
        sys.exit(1)
    print(f"ok {len(CHECKS)} checks")


if __name__ == "__main__":
    main()
