// tests/bench/xml_check.h: a small well-formedness check for the SVGs the benchmark writes.
//
// Enough XML for what report.h emits: a declaration, elements with quoted attributes,
// self-closing tags, text with the five predefined entities. Returns "" when well-formed,
// else what is wrong and where.
#pragma once

#include <cctype>
#include <string>
#include <vector>

namespace ephemera::bench::testing {

inline std::string CheckXml(const std::string& x) {
  std::vector<std::string> open;
  size_t i = 0;
  bool root_seen = false;
  auto at = [&](size_t p) { return " at byte " + std::to_string(p); };
  if (x.rfind("<?xml", 0) == 0) {
    i = x.find("?>");
    if (i == std::string::npos) return "unterminated XML declaration";
    i += 2;
  }
  while (i < x.size()) {
    if (x[i] == '<') {
      if (x.compare(i, 4, "<!--") == 0) {
        size_t e = x.find("-->", i);
        if (e == std::string::npos) return "unterminated comment" + at(i);
        i = e + 3;
        continue;
      }
      bool closing = i + 1 < x.size() && x[i + 1] == '/';
      size_t p = i + (closing ? 2 : 1);
      size_t name_start = p;
      while (p < x.size() && (std::isalnum(static_cast<unsigned char>(x[p])) || x[p] == '-' ||
                              x[p] == ':' || x[p] == '_'))
        ++p;
      std::string name = x.substr(name_start, p - name_start);
      if (name.empty()) return "empty tag name" + at(i);
      if (closing) {
        while (p < x.size() && std::isspace(static_cast<unsigned char>(x[p]))) ++p;
        if (p >= x.size() || x[p] != '>') return "bad closing tag" + at(i);
        if (open.empty() || open.back() != name) return "mismatched </" + name + ">" + at(i);
        open.pop_back();
        i = p + 1;
        continue;
      }
      if (open.empty()) {
        if (root_seen) return "second root element" + at(i);
        root_seen = true;
      }
      // Attributes: name="value" (or 'value'), separated by spaces.
      while (true) {
        while (p < x.size() && std::isspace(static_cast<unsigned char>(x[p]))) ++p;
        if (p >= x.size()) return "unterminated tag <" + name + ">";
        if (x[p] == '>') {
          open.push_back(name);
          i = p + 1;
          break;
        }
        if (x.compare(p, 2, "/>") == 0) {
          i = p + 2;
          break;
        }
        size_t a = p;
        while (p < x.size() && (std::isalnum(static_cast<unsigned char>(x[p])) || x[p] == '-' ||
                                x[p] == ':' || x[p] == '_'))
          ++p;
        if (p == a) return "bad attribute in <" + name + ">" + at(p);
        if (p >= x.size() || x[p] != '=')
          return "attribute without value in <" + name + ">" + at(p);
        ++p;
        if (p >= x.size() || (x[p] != '"' && x[p] != '\''))
          return "unquoted attribute in <" + name + ">" + at(p);
        char q = x[p++];
        size_t e = x.find(q, p);
        if (e == std::string::npos) return "unterminated attribute" + at(p);
        if (x.substr(p, e - p).find('<') != std::string::npos) return "'<' in an attribute" + at(p);
        p = e + 1;
      }
      continue;
    }
    if (x[i] == '&') {
      static const char* kEntities[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
      bool ok = false;
      for (const char* e : kEntities)
        ok = ok || x.compare(i, std::char_traits<char>::length(e), e) == 0;
      if (!ok) return "bad entity" + at(i);
    } else if (open.empty() && !std::isspace(static_cast<unsigned char>(x[i]))) {
      return "text outside the root element" + at(i);
    }
    ++i;
  }
  if (!open.empty()) return "unclosed <" + open.back() + ">";
  if (!root_seen) return "no root element";
  return "";
}

}  // namespace ephemera::bench::testing
