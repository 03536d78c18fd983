"""The baseline: a responder the way a team's runbook writes it — a Python
Lambda with boto3, clients built at start-up, the same playbooks as Firebreak
done the straightforward way, one call after another. It exists only to be
measured against Firebreak (`make bench-versus`); it has none of Firebreak's
safety rules, claims or budget.

    python responder.py EVENT.json

Settings come from the same variables as Firebreak's: AWS_ENDPOINT_URL,
AWS_REGION, FIREBREAK_RECORDS_BUCKET, FIREBREAK_TEAM_TOPIC_ARN,
FIREBREAK_STAKEHOLDER_TOPIC_ARN.
"""

import datetime
import json
import os
import sys

import boto3

iam = boto3.client("iam")
ec2 = boto3.client("ec2")
s3 = boto3.client("s3")
sns = boto3.client("sns")

ISOLATION_GROUP = "firebreak-isolation"


def deactivate_key(user, key_id):
    keys = iam.list_access_keys(UserName=user)["AccessKeyMetadata"]
    prior = next(k["Status"] for k in keys if k["AccessKeyId"] == key_id)
    iam.update_access_key(UserName=user, AccessKeyId=key_id, Status="Inactive")
    return {"deactivate_access_key": key_id, "prior": prior}


def revoke_sessions(role):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": "*",
                "Resource": "*",
                "Condition": {"DateLessThan": {"aws:TokenIssueTime": now}},
            }
        ],
    }
    iam.put_role_policy(
        RoleName=role, PolicyName="AWSRevokeOlderSessions", PolicyDocument=json.dumps(policy)
    )
    return {"revoke_role_sessions": role}


def block_ip(subnet, ip):
    acls = ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [subnet]}]
    )["NetworkAcls"]
    acl = acls[0]
    used = {e["RuleNumber"] for e in acl["Entries"] if not e["Egress"]}
    rule = next(n for n in range(1, 91) if n not in used)
    ec2.create_network_acl_entry(
        NetworkAclId=acl["NetworkAclId"],
        RuleNumber=rule,
        Protocol="-1",
        RuleAction="deny",
        Egress=False,
        CidrBlock=ip + "/32",
    )
    return {"block_ip": ip, "rule": rule}


def isolate(instance_id, incident):
    inst = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    vpc = inst["VpcId"]
    found = ec2.describe_security_groups(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "group-name", "Values": [ISOLATION_GROUP]},
        ]
    )["SecurityGroups"]
    if found:
        group = found[0]["GroupId"]
    else:
        group = ec2.create_security_group(
            GroupName=ISOLATION_GROUP, Description="isolation", VpcId=vpc
        )["GroupId"]
        ec2.revoke_security_group_egress(
            GroupId=group,
            IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}],
        )
    prior = []
    for eni in inst["NetworkInterfaces"]:
        prior.append({eni["NetworkInterfaceId"]: [g["GroupId"] for g in eni["Groups"]]})
        ec2.modify_network_interface_attribute(
            NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[group]
        )
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "firebreak:incident", "Value": incident}])
    ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": True})
    return {"isolate_instance": instance_id, "prior": prior}


def snapshot(instance_id, incident):
    volumes = ec2.describe_volumes(
        Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}]
    )["Volumes"]
    made = []
    for v in volumes:
        snap = ec2.create_snapshot(
            VolumeId=v["VolumeId"],
            TagSpecifications=[
                {
                    "ResourceType": "snapshot",
                    "Tags": [{"Key": "firebreak:incident", "Value": incident}],
                }
            ],
        )
        made.append(snap["SnapshotId"])
    return {"snapshot_volumes": made}


def respond(event):
    detail = event["detail"]
    incident = detail["id"]
    kind = detail["type"]
    resource = detail["resource"]
    done = []
    if kind.startswith("UnauthorizedAccess:IAMUser/"):
        key = resource["accessKeyDetails"]
        if key["userType"] == "AssumedRole":
            done.append(revoke_sessions(key["userName"]))
        else:
            done.append(deactivate_key(key["userName"], key["accessKeyId"]))
    elif kind == "UnauthorizedAccess:EC2/SSHBruteForce":
        inst = resource["instanceDetails"]
        action = detail["service"]["action"]["networkConnectionAction"]
        ip = action["remoteIpDetails"]["ipAddressV4"]
        done.append(block_ip(inst["networkInterfaces"][0]["subnetId"], ip))
        done.append(isolate(inst["instanceId"], incident))
        done.append(snapshot(inst["instanceId"], incident))
    record = {"id": incident, "type": kind, "actions": done}
    s3.put_object(
        Bucket=os.environ["FIREBREAK_RECORDS_BUCKET"],
        Key="baseline/%s.json" % incident,
        Body=json.dumps(record).encode(),
    )
    text = json.dumps(record, indent=2)
    for topic in ("FIREBREAK_TEAM_TOPIC_ARN", "FIREBREAK_STAKEHOLDER_TOPIC_ARN"):
        sns.publish(TopicArn=os.environ[topic], Subject="Security incident " + kind[:60], Message=text)
    return record


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(json.dumps(respond(json.load(f))))
