//! Read/write rules through the agent (SPEC §4, §5 `access=`): a read and a write of the same location get
//! the roles of different rules from STS (moto), a request without `access=` is for both and matches
//! neither one-access rule, and the `Scope` of an answer holds for its own access only.

mod support;

use support::{StsPeer, TestAgent};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_of_one_location_get_the_roles_of_their_own_rules() {
    let h = TestAgent::builder()
        .sts(StsPeer::FaultProxy)
        .config("[fallback]\nmode = \"deny\"")
        .mappings(|world| {
            let (reader, writer) = (&world.role("analytics").arn, &world.role("engineering").arn);
            let bucket = &world.role("analytics").bucket;
            format!(
                "[[mapping]]\nname = \"frozen\"\neffect = \"deny\"\naccess = [\"write\"]\n\
                 prefixes = [\"s3://{bucket}/curated/t/frozen/\"]\n\
                 [[mapping]]\nname = \"writer\"\nrole = \"{writer}\"\naccess = [\"write\"]\n\
                 prefixes = [\"s3://{bucket}/curated/\"]\n\
                 [[mapping]]\nname = \"readers\"\nrole = \"{reader}\"\naccess = [\"read\"]\n\
                 prefixes = [\"s3://{bucket}/curated/\"]\n"
            )
        })
        .start()
        .await;
    let world = h.world();
    let bucket = world.role("analytics").bucket.clone();
    let (reader, writer) = (world.role("analytics").arn.clone(), world.role("engineering").arn.clone());
    let location = format!("s3://{bucket}/curated/t/part-0 é%.parquet");
    let query = |access: &str| {
        let encoded: String = url_encode(&location);
        format!("location={encoded}{access}")
    };

    let read = h.get(&query("&access=read")).await;
    let write = h.get(&query("&access=write")).await;
    assert_eq!((read.status, write.status), (200, 200), "{} {}", read.body, write.body);
    assert_ne!(read.body["AccessKeyId"], write.body["AccessKeyId"], "two roles, two sessions");
    // The write's scope stops short of the write-protected folder; the read's is not shortened by it.
    assert_eq!(read.body["Scope"].as_str(), Some(format!("s3://{bucket}/curated/").as_str()), "{}", read.body);
    assert_eq!(write.body["Scope"].as_str(), Some(format!("s3://{bucket}/curated/t/p").as_str()), "{}", write.body);
    let frozen = h.get(&format!("location=s3://{bucket}/curated/t/frozen/x&access=write")).await;
    assert_eq!((frozen.status, frozen.body["code"].as_str()), (403, Some("AccessDenied")), "{}", frozen.body);
    let frozen_read = h.get(&format!("location=s3://{bucket}/curated/t/frozen/x&access=read")).await;
    assert_eq!(frozen_read.status, 200, "{}", frozen_read.body);

    let both = h.get(&query("")).await;
    assert_eq!((both.status, both.body["code"].as_str()), (403, Some("AccessDenied")), "{}", both.body);

    let assumed: Vec<String> = h.proxy().assume_role_requests().iter().map(|call| call["RoleArn"].clone()).collect();
    assert_eq!(assumed, [reader.clone(), writer.clone()], "one AssumeRole per role, each rule's own");

    let world_reader = reader.clone();
    let mut h = h;
    let records = h.stop_and_read_audit().await;
    let decided: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r["event"] == "credentials")
        .map(|r| {
            let text = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
            (text("access"), text("rule_name"), text("role_arn"))
        })
        .collect();
    assert_eq!(
        decided,
        [
            ("read".into(), "readers".into(), reader.clone()),
            ("write".into(), "writer".into(), writer),
            ("write".into(), "frozen".into(), "-".into()),
            ("read".into(), "readers".into(), world_reader),
            ("-".into(), "-".into(), "-".into()),
        ]
    );
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
