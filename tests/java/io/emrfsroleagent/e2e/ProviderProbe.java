package io.emrfsroleagent.e2e;

import com.amazonaws.auth.AWSCredentials;
import io.emrfsroleagent.emrfs.RoleAgentCredentialsProvider;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import org.apache.hadoop.conf.Configuration;

/**
 * Drives one long-lived provider instance from standard input, so a test can stop and start the agent between
 * calls and watch the same instance fail and recover.
 *
 * <pre>
 * ProviderProbe FS_URI [--conf KEY=VALUE]...
 * </pre>
 *
 * Commands, one per line: {@code get} prints {@code OK <AccessKeyId>} or {@code ERROR <exception class>: <message>};
 * {@code refresh} drops the cache and prints {@code REFRESHED}; end of input exits.
 */
public final class ProviderProbe {

  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration();
    for (int i = 1; i < args.length; i++) {
      if (args[i].equals("--conf")) {
        String kv = args[++i];
        int eq = kv.indexOf('=');
        conf.set(kv.substring(0, eq), kv.substring(eq + 1));
      }
    }
    RoleAgentCredentialsProvider provider = new RoleAgentCredentialsProvider(URI.create(args[0]), conf);
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      line = line.trim();
      if (line.equals("get")) {
        try {
          AWSCredentials creds = provider.getCredentials();
          System.out.println("OK " + creds.getAWSAccessKeyId());
        } catch (RuntimeException e) {
          System.out.println("ERROR " + e.getClass().getName() + ": " + e.getMessage());
        }
      } else if (line.equals("refresh")) {
        provider.refresh();
        System.out.println("REFRESHED");
      } else if (!line.isEmpty()) {
        System.out.println("UNKNOWN " + line);
      }
      System.out.flush();
    }
  }
}
