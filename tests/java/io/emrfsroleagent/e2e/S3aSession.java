package io.emrfsroleagent.e2e;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;

/**
 * Runs several operations through ONE S3A filesystem instance, as one job touching several prefixes would.
 *
 * <pre>
 * S3aSession FS_URI [--conf KEY=VALUE]... OP...
 *   write:PATH        create PATH with the text "written to PATH"
 *   writebig:PATH=MIB create PATH with MIB mebibytes of 'x' (a multipart upload with fs.s3a.multipart.size=5M)
 *   read:PATH         read PATH, print its text
 *   list:PATH         list PATH (a directory)
 *   rename:SRC=DST    rename SRC to DST
 *   delete:PATH       delete PATH recursively
 * </pre>
 *
 * Prints {@code OK OP [result]} or {@code FAIL OP: exception} per operation, each followed by
 * {@code TOOK <milliseconds> OP}, then {@code DONE}; the configuration is the site files on the class path
 * (core-site.xml) plus the {@code --conf} settings.
 */
public final class S3aSession {

  public static void main(String[] args) throws Exception {
    Configuration conf = new Configuration();
    URI fsUri = URI.create(args[0]);
    int i = 1;
    for (; i < args.length && args[i].equals("--conf"); i += 2) {
      String kv = args[i + 1];
      int eq = kv.indexOf('=');
      conf.set(kv.substring(0, eq), kv.substring(eq + 1));
    }
    conf.setBoolean("fs.s3a.impl.disable.cache", true);
    try (FileSystem fs = FileSystem.get(fsUri, conf)) {
      for (; i < args.length; i++) {
        String op = args[i];
        long start = System.nanoTime();
        try {
          System.out.println("OK " + op + run(fs, op));
        } catch (Exception e) {
          System.out.println("FAIL " + op + ": " + oneLine(e));
          e.printStackTrace(System.err);
        }
        System.out.println("TOOK " + (System.nanoTime() - start) / 1_000_000 + " " + op);
        System.out.flush();
      }
    }
    System.out.println("DONE");
  }

  private static String run(FileSystem fs, String op) throws Exception {
    int colon = op.indexOf(':');
    String verb = op.substring(0, colon);
    String arg = op.substring(colon + 1);
    switch (verb) {
      case "write": {
        try (OutputStream out = fs.create(new Path(arg), true)) {
          out.write(("written to " + arg).getBytes(StandardCharsets.UTF_8));
        }
        return "";
      }
      case "writebig": {
        int eq = arg.lastIndexOf('=');
        byte[] mib = new byte[1024 * 1024];
        java.util.Arrays.fill(mib, (byte) 'x');
        try (OutputStream out = fs.create(new Path(arg.substring(0, eq)), true)) {
          for (int n = Integer.parseInt(arg.substring(eq + 1)); n > 0; n--) {
            out.write(mib);
          }
        }
        return "";
      }
      case "read": {
        try (InputStream in = fs.open(new Path(arg))) {
          ByteArrayOutputStream buffer = new ByteArrayOutputStream();
          byte[] chunk = new byte[4096];
          int n;
          while ((n = in.read(chunk)) != -1) {
            buffer.write(chunk, 0, n);
          }
          return " " + new String(buffer.toByteArray(), StandardCharsets.UTF_8);
        }
      }
      case "list": {
        StringBuilder names = new StringBuilder();
        for (FileStatus s : fs.listStatus(new Path(arg))) {
          names.append(' ').append(s.getPath().getName());
        }
        return names.toString();
      }
      case "rename": {
        int eq = arg.indexOf('=');
        boolean renamed = fs.rename(new Path(arg.substring(0, eq)), new Path(arg.substring(eq + 1)));
        if (!renamed) {
          throw new IllegalStateException("rename returned false");
        }
        return "";
      }
      case "delete":
        return " " + fs.delete(new Path(arg), true);
      default:
        throw new IllegalArgumentException("unknown operation " + verb);
    }
  }

  /** The exception and its causes on one line. */
  private static String oneLine(Throwable e) {
    StringBuilder b = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (b.length() > 0) {
        b.append(" | caused by ");
      }
      b.append(t.toString().replace('\n', ' '));
      if (t.getCause() == t) {
        break;
      }
    }
    return b.toString();
  }
}
