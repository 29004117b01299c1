package io.emrfsroleagent.e2e;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Writes and reads back objects through Hadoop's S3A FileSystem, as a job would.
 *
 * <pre>
 * S3aRoundTrip [--conf KEY=VALUE]... PATH...
 * </pre>
 *
 * For each PATH it writes a small text, reads it back and compares; prints {@code OK PATH} or
 * {@code FAIL PATH: reason} per path and exits non-zero if any failed. The configuration is Hadoop's defaults
 * (core-default.xml from the client jar; the test classpath has no site files) plus the {@code --conf} settings.
 */
public final class S3aRoundTrip {

  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration();
    List<String> paths = new ArrayList<>();
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--conf")) {
        String kv = args[++i];
        int eq = kv.indexOf('=');
        conf.set(kv.substring(0, eq), kv.substring(eq + 1));
      } else {
        paths.add(args[i]);
      }
    }
    // Each run gets new FileSystem instances, so each asks for credentials itself.
    conf.setBoolean("fs.s3a.impl.disable.cache", true);

    int failures = 0;
    for (String p : paths) {
      Path path = new Path(p);
      String text = "written by S3aRoundTrip to " + p + "\n";
      try (FileSystem fs = FileSystem.get(URI.create(p), conf)) {
        try (OutputStream out = fs.create(path, true)) {
          out.write(text.getBytes(StandardCharsets.UTF_8));
        }
        String back;
        try (InputStream in = fs.open(path)) {
          ByteArrayOutputStream buffer = new ByteArrayOutputStream();
          byte[] chunk = new byte[4096];
          int n;
          while ((n = in.read(chunk)) != -1) {
            buffer.write(chunk, 0, n);
          }
          back = new String(buffer.toByteArray(), StandardCharsets.UTF_8);
        }
        if (!back.equals(text)) {
          throw new IllegalStateException("read back " + back.length() + " chars that differ from what was written");
        }
        long length = fs.getFileStatus(path).getLen();
        System.out.println("OK " + p + " " + length);
      } catch (Exception e) {
        failures++;
        System.out.println("FAIL " + p + ": " + e);
        e.printStackTrace(System.err);
      }
    }
    System.out.flush();
    System.exit(failures == 0 ? 0 : 1);
  }
}
