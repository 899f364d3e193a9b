// libepair: FreeBSD's epair(4) as an embeddable C++20 library.
#pragma once

#include "epair/callback_endpoint.hpp"
#include "epair/capture.hpp"
#include "epair/engine.hpp"
#include "epair/ethernet.hpp"
#include "epair/flow_hash.hpp"
#include "epair/frame.hpp"
#include "epair/impairment.hpp"
#include "epair/interface.hpp"
#include "epair/mac.hpp"
#include "epair/ring.hpp"
#include "epair/status.hpp"
#include "epair/words.hpp"
