package io.emrfsroleagent.agent;

/**
 * The agent could not be asked, or refused. The message names the endpoint, the location, the user and,
 * for a refusal, the HTTP status and the agent's code and message; never a secret.
 * {@link #status()} is 0 when no answer came; {@link #scope()} is the {@code Scope} of a refusal that
 * holds for a whole prefix (a deny rule), else null.
 */
public final class AgentException extends RuntimeException {
  private static final long serialVersionUID = 1L;

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

  /** A decision (403 from a rule), as opposed to a failure to decide: may be remembered for its scope. */
  public boolean isDenial() {
    return status == 403 && "AccessDenied".equals(code) && scope != null;
  }
}
