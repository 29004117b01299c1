// The AWS SDK for JavaScript v3's default credential chain (container credentials from the environment:
// AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN or _TOKEN_FILE), then STS
// GetCallerIdentity at STS_ENDPOINT with them. Prints "KEY <access key id>" and "ARN <caller arn>", or
// "ERROR <message>" and exits 1.
import { STSClient, GetCallerIdentityCommand } from "@aws-sdk/client-sts";
import { fromNodeProviderChain } from "@aws-sdk/credential-providers";

try {
  const credentials = await fromNodeProviderChain()();
  console.log(`KEY ${credentials.accessKeyId}`);
  const sts = new STSClient({ endpoint: process.env.STS_ENDPOINT, region: "us-east-1", credentials });
  const who = await sts.send(new GetCallerIdentityCommand({}));
  console.log(`ARN ${who.Arn}`);
} catch (e) {
  console.log(`ERROR ${e.name}: ${e.message}`);
  process.exit(1);
}
