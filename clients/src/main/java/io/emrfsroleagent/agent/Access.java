package io.emrfsroleagent.agent;

/**
 * The S3 access a request asks credentials for, sent as {@code access=read|write} (SPEC §5): reads are the
 * GET, HEAD and LIST operations, everything else writes. A {@code Scope} the agent answers with holds for the
 * request's access only, so {@link ScopeCache} keeps its entries by access and scope. The bucket-level
 * providers send no access (their credentials are used for anything).
 */
public enum Access {
  READ("read"),
  WRITE("write");

  private final String wire;

  Access(String wire) {
    this.wire = wire;
  }

  /** The query value: {@code read} or {@code write}. */
  public String wire() {
    return wire;
  }

  /**
   * The access of an S3 operation by its name ({@code GetObject}, {@code HeadObject}, {@code ListObjectsV2},
   * SDK v1's {@code GetObjectMetadata}, ...): {@link #READ} for names starting with {@code Get}, {@code Head} or
   * {@code List}, {@link #WRITE} for everything else (so an operation this list does not know asks for more,
   * never less).
   */
  public static Access ofOperation(String operation) {
    if (operation != null
        && (operation.startsWith("Get") || operation.startsWith("Head") || operation.startsWith("List"))) {
      return READ;
    }
    return WRITE;
  }
}
