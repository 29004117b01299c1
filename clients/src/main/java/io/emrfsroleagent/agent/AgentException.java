package io.emrfsroleagent.agent;

/**
 * The agent could not be asked, or refused. The message names the endpoint, the location, the user and,
 * for a refusal, the HTTP status and the agent's code and message; never a secret.
 * {@link #status()} is 0 when no answer came; {@link #scope()} is the {@code Scope} of a refusal that
 * holds for a whole prefix (a deny rule), else null. {@link #kind()} says what the caller does next; the
 * SDK-specific classes turn it into the error the SDK's callers act on ({@code emrfs.V1Errors},
 * {@code sdk2.V2Errors}).
 */
public final class AgentException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  /** Codes of the refusals the clients decide themselves: one request that no single session can sign. */
  public static final String CROSS_SCOPE_COPY = "CrossScopeCopy";
  public static final String CROSS_SCOPE_REQUEST = "CrossScopeRequest";

  /** What the caller does next. */
  public enum Kind {
    /**
     * Fail at once, as access denied: the agent refused (401 {@code Unauthorized}, 403 {@code AccessDenied},
     * {@code ImpersonationDenied}, {@code Forbidden}) or the request needs two sessions at once. Asking again
     * gives the same answer.
     */
    REFUSED,
    /** Fail at once, as a bad request: the agent found the request invalid (400 {@code InvalidRequest}). */
    INVALID,
    /** Retry later: the agent could not be reached, failed (5xx), throttled (429) or answered nonsense. */
    UNAVAILABLE
  }

  private final int status;
  private final String code;
  private final String scope;

  public AgentException(String message, int status, String code, String scope, Throwable cause) {
    super(message, cause);
    this.status = status;
    this.code = code;
    this.scope = scope;
  }

  public int status() {
    return status;
  }

  /** The agent's error code ({@code AccessDenied}, ...), or null. */
  public String code() {
    return code;
  }

  public String scope() {
    return scope;
  }

  public Kind kind() {
    if (status == 401 || status == 403 || CROSS_SCOPE_COPY.equals(code) || CROSS_SCOPE_REQUEST.equals(code)) {
      return Kind.REFUSED;
    }
    if (status == 400) {
      return Kind.INVALID;
    }
    return Kind.UNAVAILABLE;
  }

  /** A decision (403 from a rule), as opposed to a failure to decide: may be remembered for its scope. */
  public boolean isDenial() {
    return status == 403 && "AccessDenied".equals(code) && scope != null;
  }
}
