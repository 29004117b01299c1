// Command whoami: the AWS SDK for Go v2's default credential chain (container credentials from the environment:
// AWS_CONTAINER_CREDENTIALS_FULL_URI and AWS_CONTAINER_AUTHORIZATION_TOKEN or _TOKEN_FILE), then STS
// GetCallerIdentity at STS_ENDPOINT with them. Prints "KEY <access key id>" and "ARN <caller arn>", or
// "ERROR <message>" and exits 1.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

func main() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"))
	if err != nil {
		fail(err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		fail(err)
	}
	fmt.Printf("KEY %s\n", creds.AccessKeyID)
	client := sts.NewFromConfig(cfg, func(o *sts.Options) {
		o.BaseEndpoint = aws.String(os.Getenv("STS_ENDPOINT"))
	})
	who, err := client.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		fail(err)
	}
	fmt.Printf("ARN %s\n", aws.ToString(who.Arn))
}

func fail(err error) {
	fmt.Printf("ERROR %v\n", err)
	os.Exit(1)
}
