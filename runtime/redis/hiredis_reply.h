// runtime/redis/hiredis_reply.h: a hiredis reply copied into a plain C++ value.
//
// hiredis owns its redisReply and frees it once the caller is done, so both users copy
// it out: the daemon's client (redis_client.cc, into redis::Reply) and the functions'
// store (functions/orders/support/store.cc, into its own Reply, which also has a kNone).
// R needs the members of redis::Reply: type (with kNil, kString, kStatus, kInteger,
// kArray, kError), str, integer, elements.
// Thread: any. Depends on: hiredis (header only).
#pragma once

extern "C" {
#include <hiredis/hiredis.h>
}

namespace ephemera::redis {

template <typename R>
R CopyHiredisReply(const redisReply* r) {
  R out;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      out.type = R::Type::kString;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      out.type = R::Type::kStatus;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      out.type = R::Type::kError;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      out.type = R::Type::kInteger;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      out.type = R::Type::kArray;
      out.elements.reserve(r->elements);
      for (size_t i = 0; i < r->elements; ++i) {
        out.elements.push_back(CopyHiredisReply<R>(r->element[i]));
      }
      break;
    default:  // REDIS_REPLY_NIL
      out.type = R::Type::kNil;
      break;
  }
  return out;
}

}  // namespace ephemera::redis
