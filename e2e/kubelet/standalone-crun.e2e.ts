import { defineStandaloneSuite } from './standalone.js';

defineStandaloneSuite('crun');
