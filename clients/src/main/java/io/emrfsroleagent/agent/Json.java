package io.emrfsroleagent.agent;

import java.util.HashMap;
import java.util.Map;

/**
 * Reads the agent's answers: one JSON object whose values the clients need are strings. Other values
 * (numbers, booleans, null, nested objects or arrays) are accepted and skipped. No SDK's JSON library, so the
 * same code runs next to SDK v1 and SDK v2.
 */
final class Json {
  private final String text;
  private int pos;

  private Json(String text) {
    this.text = text;
  }

  /** The object's string members; throws IllegalArgumentException (without echoing the text) if not JSON. */
  static Map<String, String> stringMembers(String text) {
    Json p = new Json(text);
    Map<String, String> out = new HashMap<>();
    p.space();
    p.expect('{');
    p.space();
    if (p.peek() == '}') {
      p.pos++;
      return p.end(out);
    }
    while (true) {
      p.space();
      String key = p.string();
      p.space();
      p.expect(':');
      p.space();
      if (p.peek() == '"') {
        out.put(key, p.string());
      } else {
        p.skipValue();
      }
      p.space();
      char c = p.next();
      if (c == '}') {
        return p.end(out);
      }
      if (c != ',') {
        throw p.error();
      }
    }
  }

  private Map<String, String> end(Map<String, String> out) {
    space();
    if (pos != text.length()) {
      throw error();
    }
    return out;
  }

  private IllegalArgumentException error() {
    return new IllegalArgumentException("not a JSON object (at character " + pos + ")");
  }

  private char peek() {
    if (pos >= text.length()) {
      throw error();
    }
    return text.charAt(pos);
  }

  private char next() {
    char c = peek();
    pos++;
    return c;
  }

  private void expect(char c) {
    if (next() != c) {
      throw error();
    }
  }

  private void space() {
    while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
      pos++;
    }
  }

  private String string() {
    expect('"');
    StringBuilder b = new StringBuilder();
    while (true) {
      char c = next();
      if (c == '"') {
        return b.toString();
      }
      if (c != '\\') {
        b.append(c);
        continue;
      }
      char e = next();
      switch (e) {
        case '"': case '\\': case '/': b.append(e); break;
        case 'b': b.append('\b'); break;
        case 'f': b.append('\f'); break;
        case 'n': b.append('\n'); break;
        case 'r': b.append('\r'); break;
        case 't': b.append('\t'); break;
        case 'u':
          if (pos + 4 > text.length()) {
            throw error();
          }
          try {
            b.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
          } catch (NumberFormatException ex) {
            throw error();
          }
          pos += 4;
          break;
        default:
          throw error();
      }
    }
  }

  private void skipValue() {
    char c = peek();
    if (c == '"') {
      string();
    } else if (c == '{' || c == '[') {
      char close = c == '{' ? '}' : ']';
      pos++;
      space();
      if (peek() == close) {
        pos++;
        return;
      }
      while (true) {
        space();
        if (c == '{') {
          string();
          space();
          expect(':');
          space();
        }
        skipValue();
        space();
        char n = next();
        if (n == close) {
          return;
        }
        if (n != ',') {
          throw error();
        }
      }
    } else {
      int start = pos;
      while (pos < text.length() && "{}[],: \t\r\n\"".indexOf(text.charAt(pos)) < 0) {
        pos++;
      }
      String word = text.substring(start, pos);
      if (!word.equals("true") && !word.equals("false") && !word.equals("null")
          && !word.matches("-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][+-]?[0-9]+)?")) {
        throw error();
      }
    }
  }
}
