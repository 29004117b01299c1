// Asks STS who it is, with credentials from the AWS SDK for JavaScript v3's default chain (here: the
// container-credentials provider pointed at the agent). Prints the answer as JSON.
//
//   node caller-identity.mjs <sts endpoint url>
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";

const endpoint = process.argv[2];
if (!endpoint) {
  console.error("usage: node caller-identity.mjs <sts endpoint url>");
  process.exit(2);
}
const client = new STSClient({ region: "us-east-1", endpoint });
try {
  const me = await client.send(new GetCallerIdentityCommand({}));
  const credentials = await client.config.credentials();
  console.log(JSON.stringify({ Arn: me.Arn, AccessKeyId: credentials.accessKeyId }));
} catch (err) {
  console.error(`${err.name}: ${err.message}`);
  process.exit(1);
}
