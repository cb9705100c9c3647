import { defineStandaloneSuite } from './standalone.js';

defineStandaloneSuite('runc');
