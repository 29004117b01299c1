package io.emrfsroleagent.testing;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * An S3 endpoint on a loopback port that answers every request 200 with an empty body (enough for HEAD
 * requests: HeadBucket, HeadObject) and records, per request, the method, the raw path and the access key id
 * of its SigV4 signature: which credentials a real SDK client signed with.
 */
public final class FakeS3 implements AutoCloseable {
  private static final Pattern CREDENTIAL = Pattern.compile("Credential=([^/,\\s]+)/");

  /** "METHOD /raw/path KEYID" per request, in order. */
  public final List<String> requests = Collections.synchronizedList(new ArrayList<String>());
  private final HttpServer server;

  public FakeS3() throws IOException {
    server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
    server.setExecutor(Executors.newCachedThreadPool());
    server.createContext("/", this::handle);
    server.start();
  }

  public String endpoint() {
    return "http://127.0.0.1:" + server.getAddress().getPort();
  }

  private void handle(HttpExchange exchange) throws IOException {
    String auth = exchange.getRequestHeaders().getFirst("Authorization");
    Matcher m = CREDENTIAL.matcher(auth == null ? "" : auth);
    requests.add(exchange.getRequestMethod() + " " + exchange.getRequestURI().getRawPath() + " "
        + (m.find() ? m.group(1) : "unsigned"));
    try (InputStream in = exchange.getRequestBody()) {
      byte[] skip = new byte[4096];
      while (in.read(skip) != -1) {
        // drain
      }
    }
    exchange.getResponseHeaders().set("Content-Type", "application/xml");
    exchange.getResponseHeaders().set("x-amz-request-id", "fake-s3");
    exchange.sendResponseHeaders(200, -1);
    exchange.close();
  }

  @Override
  public void close() {
    server.stop(0);
    ((ExecutorService) server.getExecutor()).shutdownNow();
  }
}
